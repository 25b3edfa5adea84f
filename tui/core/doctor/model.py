"""What the doctor knows about a setup and what each check concluded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tui.core.doctor.agent_need import AgentNeed
from tui.core.gguf import GgufInfo, KvEstimate
from tui.core.logs.events import LogEvent
from tui.core.poll.snapshots import GpuSnapshot, RouterModel, ServerSnapshot

# skip: the check could not run (the message says why); it never counts as a pass.
Status = Literal["pass", "warn", "fail", "skip"]


@dataclass(frozen=True)
class CheckResult:
    """One doctor line: check name, pass/warn/fail, what was found and how to fix it."""

    check: str
    status: Status
    message: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        """The `doctor --json` item."""
        return {"check": self.check, "status": self.status, "message": self.message, "fix": self.fix}


@dataclass(frozen=True)
class Launch:
    """The llama-server launch being checked (planned settings, or what a running server reports)."""

    url: str
    model: str = ""
    ctx_size: int = 0
    parallel: int = 0
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    flash_attn: str = "auto"
    n_gpu_layers: str = "auto"
    # None: llama-server's default (unified only with -np auto).
    kv_unified: bool | None = None
    log_file: str = ""
    agent_client: str = "claude"
    agent_window: int = 0
    agent_window_source: str = ""
    extra_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class PresetFacts:
    """Router mode: one preset, the GGUF its --model names (header only) and the context it asks for."""

    model: RouterModel
    path: str
    gguf: GgufInfo | None
    gguf_error: str
    ctx_size: int | None


@dataclass(frozen=True)
class DoctorFacts:
    """Everything gathered before the checks run; checks are pure functions of this."""

    launch: Launch
    mode: Literal["planned", "running"]
    server: ServerSnapshot | None = None
    gguf: GgufInfo | None = None
    gguf_error: str = ""
    kv: KvEstimate | None = None
    gpu: GpuSnapshot | None = None
    mem_available: int | None = None
    log_head: str | None = None
    log_error: str = ""
    log_events: tuple[LogEvent, ...] = field(default_factory=tuple)
    agent_need: AgentNeed = AgentNeed(None, "not measured")
    # Router mode: each model preset with its GGUF header (doctor.presets.PresetFacts).
    presets: tuple[PresetFacts, ...] = ()
