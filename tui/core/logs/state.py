"""What the log tells about the server and its slots, as frozen values the dashboard renders.

Kept apart from the log events and trackers so the UI can import them without loading the parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BufferFact:
    """One buffer allocation (kind model/kv/compute/rs/output) on one device."""

    buffer: str
    device: str
    size_mib: float


@dataclass(frozen=True)
class ServerFacts:
    """Everything the startup log said; state is unknown, loading, up, sleeping, failed or stopped."""

    state: str = "unknown"
    build: int | None = None
    commit: str | None = None
    model: str | None = None
    url: str | None = None
    n_slots: int | None = None
    n_ctx_slot: int | None = None
    kv_unified: bool | None = None
    n_ctx: int | None = None
    n_ctx_seq: int | None = None
    n_seq_max: int | None = None
    n_batch: int | None = None
    n_ubatch: int | None = None
    n_ctx_train: int | None = None
    n_swa: int | None = None
    flash_attn: str | None = None
    kv_cache_mib: float | None = None
    buffers: tuple[BufferFact, ...] = ()
    warnings: tuple[str, ...] = ()
    load_error: str | None = None
    updated_ts: float | None = None

    def buffer_mib(self, buffer: str, device: str | None = None) -> float:
        """Total MiB of one buffer kind, on one device or all."""
        return sum(b.size_mib for b in self.buffers if b.buffer == buffer and device in (None, b.device))

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        out: dict[str, Any] = {"kind": "server_facts"}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "buffers":
                value = [{"buffer": b.buffer, "device": b.device, "size_mib": b.size_mib} for b in value]
            elif name == "warnings":
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True)
class CheckpointMark:
    """One context checkpoint of a slot; state is "live", "restored" (live and used) or "erased"."""

    pos_min: int | None
    pos_max: int | None
    n_tokens: int | None
    size_mib: float | None
    task: int | None
    state: str
    restores: int = 0
    erase_reason: str | None = None


@dataclass(frozen=True)
class SlotState:
    """What one slot is doing now, as far as the log tells; phase is idle, queued, prompt or generating."""

    slot: int
    n_ctx: int | None
    task: int | None
    last_task: int | None
    phase: str
    progress: float | None
    prompt_tokens: int | None
    reused_tokens: int | None
    n_tokens: int | None
    n_gen: int | None
    truncated: bool | None
    checkpoints: tuple[CheckpointMark, ...]
    updated_ts: float | None

    @property
    def busy(self) -> bool:
        """True while a task runs on the slot."""
        return self.phase in ("prompt", "generating")

    @property
    def live_checkpoints(self) -> int:
        """Checkpoints not erased."""
        return sum(1 for c in self.checkpoints if c.state != "erased")

    @property
    def checkpoint_mib(self) -> float:
        """Host RAM held by the slot's live checkpoints."""
        return sum(c.size_mib or 0.0 for c in self.checkpoints if c.state != "erased")
