"""Log events of a server starting: build, model, context sizes, buffers, slots, listening address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tui.core.logs.event_base import LogEvent


@dataclass(frozen=True, slots=True)
class BuildInfo(LogEvent):
    """Build number, commit and compiler of the server."""

    kind: ClassVar[str] = "build_info"

    build: int | None
    commit: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class ModelLoading(LogEvent):
    """The server started loading a model (name or path as logged)."""

    kind: ClassVar[str] = "model_loading"

    model: str


@dataclass(frozen=True, slots=True)
class ModelLoadFailed(LogEvent):
    """Loading the model failed."""

    kind: ClassVar[str] = "model_load_failed"

    model: str


@dataclass(frozen=True, slots=True)
class ModelLoaded(LogEvent):
    """The model is loaded and the server is about to serve."""

    kind: ClassVar[str] = "model_loaded"


@dataclass(frozen=True, slots=True)
class SlotInit(LogEvent):
    """One slot was created with its context size (`new slot, n_ctx = …`)."""

    kind: ClassVar[str] = "slot_init"

    n_ctx_slot: int


@dataclass(frozen=True, slots=True)
class ServerInit(LogEvent):
    """Slot layout: number of slots, per-slot context, unified KV."""

    kind: ClassVar[str] = "server_init"

    n_slots: int
    n_ctx_slot: int | None
    kv_unified: bool | None


@dataclass(frozen=True, slots=True)
class Listening(LogEvent):
    """The HTTP server URL."""

    kind: ClassVar[str] = "listening"

    url: str


@dataclass(frozen=True, slots=True)
class ServerStopping(LogEvent):
    """The server is shutting down."""

    kind: ClassVar[str] = "server_stopping"


@dataclass(frozen=True, slots=True)
class ModelInfo(LogEvent):
    """One `print_info: key = value` fact (n_ctx_train, n_layer, n_swa, arch, file size, …)."""

    kind: ClassVar[str] = "model_info"

    name: str
    value: int | None
    text: str


@dataclass(frozen=True, slots=True)
class ContextParam(LogEvent):
    """One `llama_context: key = value` fact (n_ctx, n_ctx_seq, n_seq_max, n_batch, flash_attn, …)."""

    kind: ClassVar[str] = "context_param"

    name: str
    value: int | None
    text: str


@dataclass(frozen=True, slots=True)
class TrainContextCapped(LogEvent):
    """The context asked for exceeds the model's training context; source is "server" or "llama"."""

    kind: ClassVar[str] = "train_context_capped"

    n_ctx: int
    n_ctx_train: int
    source: str


@dataclass(frozen=True, slots=True)
class BufferSize(LogEvent):
    """A buffer allocation; buffer is "model", "kv", "compute", "rs" or "output"."""

    kind: ClassVar[str] = "buffer_size"

    buffer: str
    device: str
    size_mib: float


@dataclass(frozen=True, slots=True)
class KvCacheSize(LogEvent):
    """The KV cache summary line (total, cells per stream, layers, seqs/streams, K and V parts)."""

    kind: ClassVar[str] = "kv_cache_size"

    size_mib: float
    cells: int
    layers: int
    seqs: int | None
    streams: int | None
    k_type: str | None
    k_mib: float | None
    v_type: str | None
    v_mib: float | None


@dataclass(frozen=True, slots=True)
class FlashAttention(LogEvent):
    """Whether flash attention ended up enabled."""

    kind: ClassVar[str] = "flash_attention"

    enabled: bool
