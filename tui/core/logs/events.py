"""Typed events parsed from llama-server log lines (frozen dataclasses with a JSON form)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class LogEvent:
    """Fields every event has: where it came from (slot/task), when (log elapsed seconds) and the raw line."""

    kind: ClassVar[str] = "event"

    ts: float | None
    level: str | None
    slot: int | None
    task: int | None
    line: str

    def to_json(self, include_line: bool = True) -> dict[str, Any]:
        """Plain-JSON form: {"kind": ..., slot, task, ts, level, typed fields (numbers as numbers), line}."""
        cls = type(self)
        names = _FIELD_NAMES.get(cls)
        if names is None:
            ordered = [f.name for f in fields(cls) if f.name != "line"]
            names = (ordered[2], ordered[3], ordered[0], ordered[1], *ordered[4:], "line")
            _FIELD_NAMES[cls] = names
        out: dict[str, Any] = {"kind": cls.kind}
        for name in names:
            if name == "line" and not include_line:
                continue
            out[name] = getattr(self, name)
        return out


# --- per-request events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlotSelected(LogEvent):
    """A slot was picked for the next task: reason is "lcp", "lru" or "id"."""

    kind: ClassVar[str] = "slot_selected"

    reason: str
    similarity: float | None
    threshold: float | None
    f_keep: float | None
    t_last: int | None


@dataclass(frozen=True, slots=True)
class TaskLaunched(LogEvent):
    """A task started on a slot (`processing task`)."""

    kind: ClassVar[str] = "task_launched"

    is_child: bool | None


@dataclass(frozen=True, slots=True)
class NewPrompt(LogEvent):
    """A new prompt arrived on a slot: slot context size, n_keep and prompt length in tokens."""

    kind: ClassVar[str] = "new_prompt"

    n_ctx_slot: int
    n_keep: int | None
    n_prompt_tokens: int


@dataclass(frozen=True, slots=True)
class CachedPrefix(LogEvent):
    """How many prompt tokens were reused from the slot's cache (`cached n_tokens`, `n_past`, `n_tokens`)."""

    kind: ClassVar[str] = "cached_prefix"

    n_cached: int
    seq_rm_from: int | None


@dataclass(frozen=True, slots=True)
class CheckpointCreated(LogEvent):
    """A context checkpoint was saved (index of max, token range, size)."""

    kind: ClassVar[str] = "checkpoint_created"

    index: int
    max: int
    pos_min: int
    pos_max: int
    n_tokens: int | None
    size_mib: float


@dataclass(frozen=True, slots=True)
class CheckpointRestored(LogEvent):
    """A context checkpoint was restored to reuse a prefix."""

    kind: ClassVar[str] = "checkpoint_restored"

    pos_min: int
    pos_max: int
    n_tokens: int | None
    n_past: int | None
    size_mib: float | None


@dataclass(frozen=True, slots=True)
class CheckpointErased(LogEvent):
    """A context checkpoint was dropped; reason is "invalidated", "old", "too_close" or "superseded"."""

    kind: ClassVar[str] = "checkpoint_erased"

    reason: str
    pos_min: int | None
    pos_max: int | None
    n_tokens: int | None
    size_mib: float | None
    n_swa: int | None
    pos_next: int | None


@dataclass(frozen=True, slots=True)
class FullReprocess(LogEvent):
    """The server discarded the cache and re-processes the whole prompt."""

    kind: ClassVar[str] = "full_reprocess"

    reason: str


@dataclass(frozen=True, slots=True)
class PromptProgress(LogEvent):
    """Prompt processing progress (fraction 0..1); elapsed/tokens_per_s only in the newer format."""

    kind: ClassVar[str] = "prompt_progress"

    n_tokens: int
    batch_n_tokens: int | None
    progress: float
    elapsed_s: float | None
    tokens_per_s: float | None


@dataclass(frozen=True, slots=True)
class PromptDone(LogEvent):
    """Prompt processing finished (older builds)."""

    kind: ClassVar[str] = "prompt_done"

    n_tokens: int
    batch_n_tokens: int | None


@dataclass(frozen=True, slots=True)
class Timing(LogEvent):
    """One timings line at request end; phase is "prompt", "eval" or "total"."""

    kind: ClassVar[str] = "timing"

    phase: str
    ms: float
    tokens: int
    ms_per_token: float | None
    tokens_per_s: float | None


@dataclass(frozen=True, slots=True)
class GraphsReused(LogEvent):
    """How many compute graphs were reused during the request (last timings line)."""

    kind: ClassVar[str] = "graphs_reused"

    count: int


@dataclass(frozen=True, slots=True)
class GenProgress(LogEvent):
    """Generation progress during long generations."""

    kind: ClassVar[str] = "gen_progress"

    n_gen: int
    tg_per_s: float | None
    tg_3s_per_s: float | None


@dataclass(frozen=True, slots=True)
class SlotReleased(LogEvent):
    """The slot finished its task: tokens left in the slot and whether the context filled."""

    kind: ClassVar[str] = "slot_released"

    n_tokens: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class ContextShift(LogEvent):
    """Tokens were discarded to make room during generation."""

    kind: ClassVar[str] = "context_shift"

    n_keep: int
    n_left: int
    n_discard: int


@dataclass(frozen=True, slots=True)
class TaskCancelled(LogEvent):
    """A task was cancelled (client gone, or after an error); `task` holds its id."""

    kind: ClassVar[str] = "task_cancelled"


@dataclass(frozen=True, slots=True)
class RequestDone(LogEvent):
    """An HTTP request finished (older builds' `done request` line)."""

    kind: ClassVar[str] = "request_done"

    method: str
    path: str
    client: str
    status: int


@dataclass(frozen=True, slots=True)
class ServerError(LogEvent):
    """An error line; for `exceeds the available context size` the two numbers are filled."""

    kind: ClassVar[str] = "error"

    message: str
    n_prompt_tokens: int | None
    n_ctx: int | None


@dataclass(frozen=True, slots=True)
class AllSlotsIdle(LogEvent):
    """No slot is processing anything."""

    kind: ClassVar[str] = "all_slots_idle"


@dataclass(frozen=True, slots=True)
class SleepState(LogEvent):
    """The server entered (sleeping=True) or left sleep mode."""

    kind: ClassVar[str] = "sleep_state"

    sleeping: bool


@dataclass(frozen=True, slots=True)
class SlotPurged(LogEvent):
    """An idle slot's cache was cleared to make room in the unified KV cache; `slot` is the purged slot."""

    kind: ClassVar[str] = "slot_purged"

    n_tokens: int


# --- startup facts ----------------------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class Raw(LogEvent):
    """A line the parser does not interpret (message is the line without its prefix)."""

    kind: ClassVar[str] = "raw"

    component: str | None
    func: str | None
    message: str


def _install_fast_init(cls: type[LogEvent]) -> None:
    """Replace the frozen dataclass __init__ with one that sets slots through their descriptors.

    Why: the parser builds 100k+ events/s and the generated frozen __init__ goes through
    object.__setattr__ for every field (about 40% slower); immutability afterwards is unchanged.
    """
    names = [f.name for f in fields(cls)]
    setters: dict[str, Any] = {}
    for name in names:
        owner = next(k for k in cls.__mro__ if name in k.__dict__)
        setters[f"_set_{name}"] = owner.__dict__[name].__set__
    body = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    namespace: dict[str, Any] = {}
    exec(f"def __init__(self, {', '.join(names)}):\n{body}", setters, namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    type.__setattr__(cls, "__init__", init)


EVENT_TYPES: tuple[type[LogEvent], ...] = (
    SlotSelected,
    TaskLaunched,
    NewPrompt,
    CachedPrefix,
    CheckpointCreated,
    CheckpointRestored,
    CheckpointErased,
    FullReprocess,
    PromptProgress,
    PromptDone,
    Timing,
    GraphsReused,
    GenProgress,
    SlotReleased,
    ContextShift,
    TaskCancelled,
    RequestDone,
    ServerError,
    AllSlotsIdle,
    SleepState,
    SlotPurged,
    BuildInfo,
    ModelLoading,
    ModelLoadFailed,
    ModelLoaded,
    SlotInit,
    ServerInit,
    Listening,
    ServerStopping,
    ModelInfo,
    ContextParam,
    TrainContextCapped,
    BufferSize,
    KvCacheSize,
    FlashAttention,
    Raw,
)
for _event_type in EVENT_TYPES:
    _install_fast_init(_event_type)
EVENT_KINDS: dict[str, type[LogEvent]] = {cls.kind: cls for cls in EVENT_TYPES}
