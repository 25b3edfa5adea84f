"""Frozen, timestamped snapshots of llama-server and GPU state that the dashboard renders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ServerState = Literal["loading", "up", "sleeping", "down"]


@dataclass(frozen=True)
class SlotSnapshot:
    """One server slot as reported by GET /slots (idle slots lack the per-task fields)."""

    id: int
    n_ctx: int
    is_processing: bool
    id_task: int | None = None
    # Tokens currently held in this slot's KV cache (prompt + generated so far).
    n_prompt_tokens: int = 0
    # Per-task counters; llama-server resets them to 0 when the task ends.
    n_prompt_tokens_processed: int = 0
    n_prompt_tokens_cache: int = 0
    n_decoded: int = 0
    # Live generation speed from n_decoded deltas between two polls; None when not measurable.
    decode_rate: float | None = None

    @property
    def fill(self) -> float:
        """KV fill of this slot: n_prompt_tokens / n_ctx (0.0 when n_ctx is unknown)."""
        return self.n_prompt_tokens / self.n_ctx if self.n_ctx > 0 else 0.0


@dataclass(frozen=True)
class MetricsSnapshot:
    """Counters and gauges from GET /metrics, plus throughputs derived from counter deltas."""

    ts: float
    prompt_tokens_total: float = 0.0
    prompt_tokens_cached_total: float = 0.0
    prompt_seconds_total: float = 0.0
    tokens_predicted_total: float = 0.0
    tokens_predicted_seconds_total: float = 0.0
    n_decode_total: float = 0.0
    requests_processing: float = 0.0
    requests_deferred: float = 0.0
    n_tokens_max: float = 0.0
    spec_draft_tokens_total: float = 0.0
    spec_accepted_tokens_total: float = 0.0
    spec_drafts_total: float = 0.0
    # Derived from deltas against the previous scrape (None on the first scrape or without new work).
    prompt_tokens_per_s: float | None = None
    predicted_tokens_per_s: float | None = None
    # Prompt tokens since the previous scrape: evaluated vs reused from cache.
    prompt_tokens_delta: float = 0.0
    prompt_tokens_cached_delta: float = 0.0
    # Draft tokens accepted / drafted since the previous scrape (None: nothing drafted meanwhile).
    spec_acceptance: float | None = None

    @property
    def spec_acceptance_avg(self) -> float | None:
        """Lifetime share of drafted tokens the target model accepted (None: no speculative decoding)."""
        if self.spec_draft_tokens_total <= 0:
            return None
        return self.spec_accepted_tokens_total / self.spec_draft_tokens_total

    @property
    def cached_ratio(self) -> float | None:
        """Lifetime share of prompt tokens served from cache (None before any prompt)."""
        total = self.prompt_tokens_total + self.prompt_tokens_cached_total
        return self.prompt_tokens_cached_total / total if total > 0 else None


@dataclass(frozen=True)
class RouterModel:
    """One model of a router-mode llama-server (--models-dir / --models-preset) as GET /models lists it.

    status is the server's word (loaded, loading, unloaded, sleeping), or "failed" when its last load
    exited with an error. Slots and n_ctx come from /props and /slots `?model=`, polled only while loaded.
    """

    id: str
    status: str
    source: str = ""  # models_dir | preset | cache (the server's "source")
    exit_code: int | None = None
    n_slots: int = 0
    n_ctx_slot: int = 0
    n_ctx_train: int | None = None
    slots: tuple[SlotSnapshot, ...] = ()
    slots_ts: float | None = None  # when the /slots answer behind `slots` arrived
    args: tuple[str, ...] = ()  # the command line the router starts it with
    preset: str = ""  # its preset as INI text

    def to_json(self) -> dict[str, object]:
        """The `server status --json` form (args and preset left out: they may hold paths and keys)."""
        return {
            "id": self.id,
            "status": self.status,
            "source": self.source,
            "exit_code": self.exit_code,
            "n_slots": self.n_slots or None,
            "n_ctx": self.n_ctx_slot or None,
            "n_ctx_train": self.n_ctx_train,
            "busy_slots": sum(1 for s in self.slots if s.is_processing),
        }


@dataclass(frozen=True)
class ServerSnapshot:
    """One poll of llama-server: state, model, slots and metrics."""

    ts: float
    state: ServerState
    url: str
    error: str = ""
    model: str = ""
    model_path: str = ""
    build: str = ""
    n_slots: int = 0
    n_ctx_slot: int = 0
    n_ctx_train: int | None = None
    slots: tuple[SlotSnapshot, ...] = ()
    # When the /slots answer behind `slots` arrived: a task it shows had started by then (`ts` is when
    # the poll began, before the request that task serves may have reached the proxy).
    slots_ts: float | None = None
    metrics: MetricsSnapshot | None = None
    requests_deferred: int | None = None
    last_ok_ts: float | None = None
    # Why slots or metrics are missing while up, e.g. "metrics disabled (start llama-server with --metrics)".
    notes: tuple[str, ...] = ()
    # Whether the chat template renders tools (/props chat_template_caps.supports_tools), None: unknown.
    template_tools: bool | None = None
    # Router mode: every model the router offers (empty for a single-model server); the fields above
    # (model, slots, n_ctx_slot, metrics) then describe the loaded model requests went to last.
    models: tuple[RouterModel, ...] = ()

    @property
    def router(self) -> bool:
        """Whether this is a router-mode server (several models, loaded on demand)."""
        return bool(self.models)

    @property
    def busy_slots(self) -> int:
        """Number of slots currently processing a task."""
        return sum(1 for s in self.slots if s.is_processing)

    @property
    def decode_rate(self) -> float | None:
        """Sum of the live decode rates of busy slots (None when none is measurable)."""
        rates = [s.decode_rate for s in self.slots if s.decode_rate is not None]
        return sum(rates) if rates else None


@dataclass(frozen=True)
class GpuDevice:
    """One NVIDIA GPU as sampled through NVML; None where NVML does not support a reading."""

    index: int
    name: str
    mem_used: int
    mem_total: int
    util_pct: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    # Energy since driver load (NVML counter) or integrated from power samples, in millijoules.
    energy_mj: float | None = None
    energy_source: Literal["counter", "integrated", "none"] = "none"
    # VRAM used by the watched llama-server process on this device.
    process_vram: int | None = None


@dataclass(frozen=True)
class BufferSizes:
    """Memory buffers llama-server reported in its log for one backend device, in MiB."""

    device: str
    model_mib: float = 0.0
    kv_mib: float = 0.0
    compute_mib: float = 0.0
    output_mib: float = 0.0
    recurrent_mib: float = 0.0

    @property
    def total_mib(self) -> float:
        """Sum of all buffers on this device."""
        return self.model_mib + self.kv_mib + self.compute_mib + self.output_mib + self.recurrent_mib


@dataclass(frozen=True)
class GpuSnapshot:
    """One GPU sample, or the reason there is none plus fallback memory facts."""

    ts: float
    available: bool
    reason: str = ""
    devices: tuple[GpuDevice, ...] = ()
    server_pid: int | None = None
    # Total VRAM of the server process across devices (None when unknown or no GPU).
    server_process_vram: int | None = None
    # Fallback facts: buffer sizes from the server log and the server process RSS (bytes).
    buffers: tuple[BufferSizes, ...] = ()
    process_rss: int | None = None

    @property
    def mem_used(self) -> int:
        """VRAM used across all devices in bytes."""
        return sum(d.mem_used for d in self.devices)

    @property
    def mem_total(self) -> int:
        """VRAM across all devices in bytes."""
        return sum(d.mem_total for d in self.devices)

    @property
    def power_w(self) -> float | None:
        """Power draw across devices in watts (None when no device reports it)."""
        values = [d.power_w for d in self.devices if d.power_w is not None]
        return sum(values) if values else None
