"""Typed events parsed from llama-server log lines (frozen dataclasses with a JSON form).

Per-request events live here; the startup facts live in startup_events and are re-exported, so
`events.X` names every event type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from tui.core.logs.event_base import LogEvent, install_fast_init
from tui.core.logs.startup_events import (
    BufferSize,
    BuildInfo,
    ContextParam,
    FlashAttention,
    KvCacheSize,
    Listening,
    ModelInfo,
    ModelLoaded,
    ModelLoadFailed,
    ModelLoading,
    ServerInit,
    ServerStopping,
    SlotInit,
    TrainContextCapped,
)

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
class DraftAcceptance(LogEvent):
    """Speculative decoding at request end: draft tokens the target model accepted of those drafted."""

    kind: ClassVar[str] = "draft_acceptance"

    accepted: int
    generated: int
    rate: float | None
    mean_len: float | None


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


@dataclass(frozen=True, slots=True)
class Raw(LogEvent):
    """A line the parser does not interpret (message is the line without its prefix)."""

    kind: ClassVar[str] = "raw"

    component: str | None
    func: str | None
    message: str


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
    DraftAcceptance,
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
    install_fast_init(_event_type)
EVENT_KINDS: dict[str, type[LogEvent]] = {cls.kind: cls for cls in EVENT_TYPES}

__all__ = [
    "AllSlotsIdle",
    "BufferSize",
    "BuildInfo",
    "CachedPrefix",
    "CheckpointCreated",
    "CheckpointErased",
    "CheckpointRestored",
    "ContextParam",
    "ContextShift",
    "DraftAcceptance",
    "EVENT_KINDS",
    "EVENT_TYPES",
    "FlashAttention",
    "FullReprocess",
    "GenProgress",
    "GraphsReused",
    "KvCacheSize",
    "Listening",
    "LogEvent",
    "ModelInfo",
    "ModelLoadFailed",
    "ModelLoaded",
    "ModelLoading",
    "NewPrompt",
    "PromptDone",
    "PromptProgress",
    "Raw",
    "RequestDone",
    "ServerError",
    "ServerInit",
    "ServerStopping",
    "SleepState",
    "SlotInit",
    "SlotPurged",
    "SlotReleased",
    "SlotSelected",
    "TaskCancelled",
    "TaskLaunched",
    "Timing",
    "TrainContextCapped",
]
