"""Group log events per slot and task into request timelines (bounded history, frozen snapshots)."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from tui.core.logs import events as ev
from tui.core.logs.host_cache import HOST_CACHE_OFF, HostCacheActivity, fold, host_cache_line

DEFAULT_MAX_REQUESTS = 500
MAX_PROGRESS_SAMPLES = 64
_LATE_TASKS = 64  # finished tasks kept addressable for lines that follow the release (cancel, done)


@dataclass(frozen=True)
class ProgressSample:
    """One prompt-processing progress point of a request."""

    ts: float | None
    n_tokens: int
    progress: float
    tokens_per_s: float | None


@dataclass(frozen=True)
class RequestTimeline:
    """What the log says about one task on one slot, from slot selection to release."""

    slot: int | None
    task: int | None
    started_ts: float | None
    ended_ts: float | None
    done: bool
    selection: str | None
    similarity: float | None
    f_keep: float | None
    n_ctx_slot: int | None
    prompt_tokens: int | None
    reused_tokens: int | None
    new_tokens: int | None
    generated_tokens: int | None
    prompt_ms: float | None
    prompt_per_s: float | None
    eval_ms: float | None
    eval_per_s: float | None
    total_ms: float | None
    checkpoints_created: int
    checkpoints_restored: int
    checkpoints_erased: int
    full_reprocess: bool
    context_shifts: int
    progress: tuple[ProgressSample, ...]
    released_tokens: int | None
    truncated: bool | None
    cancelled: bool
    error: str | None
    error_n_prompt_tokens: int | None
    error_n_ctx: int | None
    run: int = 0  # server processes seen before this task's (bumps at every restart in the log)
    # Speculative decoding: draft tokens accepted by the target model of those the draft generated.
    draft_accepted: int | None = None
    draft_generated: int | None = None
    # The host prompt cache at this task's slot selection: looked for a better prompt, restored one,
    # refused to keep a prompt of this length (over the limit in MiB), dropped older entries.
    host_looked: bool = False
    host_restored: bool = False
    host_refused: int | None = None
    host_refused_limit_mib: float | None = None
    host_dropped: int = 0
    # /slots polls only (no log): prompt tokens in the KV when last seen mid-prompt (at most its size).
    seen_tokens: int | None = None

    @property
    def fill(self) -> float | None:
        """Share of the slot's context in use at release, else the prompt's share (can exceed 1 on errors)."""
        used = self.released_tokens or self.prompt_tokens  # an error releases with 0 tokens: show the ask
        if used is None or not self.n_ctx_slot:
            return None
        return used / self.n_ctx_slot

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form with kind "task_summary" (numbers as numbers)."""
        out: dict[str, Any] = {"kind": "task_summary"}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if name == "progress":
                value = [[p.ts, p.n_tokens, p.progress, p.tokens_per_s] for p in value]
            out[name] = value
        out["fill"] = self.fill
        return out


@dataclass
class _RequestBuilder:
    """Mutable accumulation for one request; only Timeline touches it."""

    slot: int | None
    task: int | None = None
    started_ts: float | None = None
    ended_ts: float | None = None
    done: bool = False
    selection: str | None = None
    similarity: float | None = None
    f_keep: float | None = None
    n_ctx_slot: int | None = None
    prompt_tokens: int | None = None
    reused_tokens: int | None = None
    new_tokens: int | None = None
    generated_tokens: int | None = None
    prompt_ms: float | None = None
    prompt_per_s: float | None = None
    eval_ms: float | None = None
    eval_per_s: float | None = None
    total_ms: float | None = None
    checkpoints_created: int = 0
    checkpoints_restored: int = 0
    checkpoints_erased: int = 0
    full_reprocess: bool = False
    context_shifts: int = 0
    progress: deque[ProgressSample] = field(default_factory=lambda: deque(maxlen=MAX_PROGRESS_SAMPLES))
    released_tokens: int | None = None
    truncated: bool | None = None
    cancelled: bool = False
    error: str | None = None
    error_n_prompt_tokens: int | None = None
    error_n_ctx: int | None = None
    run: int = 0
    draft_accepted: int | None = None
    draft_generated: int | None = None
    host_looked: bool = False
    host_restored: bool = False
    host_refused: int | None = None
    host_refused_limit_mib: float | None = None
    host_dropped: int = 0
    seen_tokens: int | None = None  # never from the log (see RequestTimeline)

    def snapshot(self) -> RequestTimeline:
        values = {name: getattr(self, name) for name in RequestTimeline.__dataclass_fields__}
        values["progress"] = tuple(self.progress)
        return RequestTimeline(**values)


class Timeline:
    """Feeds on events in log order; keeps in-flight requests per slot and a bounded history."""

    def __init__(self, max_requests: int = DEFAULT_MAX_REQUESTS) -> None:
        self._history: deque[_RequestBuilder] = deque(maxlen=max(1, max_requests))
        self._active: dict[int | None, _RequestBuilder] = {}
        self._by_task: OrderedDict[int, _RequestBuilder] = OrderedDict()
        self._pending_selection: dict[int | None, ev.SlotSelected] = {}
        self.generation = 0  # bumps on every change, so a UI can skip redraws
        self.run = 0  # server starts seen (the first log's own start included)
        # The host prompt cache's size limit this run (HOST_CACHE_OFF: disabled; None: not logged).
        self.host_cache_mib: float | None = None
        self._host: HostCacheActivity | None = None

    # --- reading -----------------------------------------------------------------------------------

    def requests(self, last: int | None = None) -> tuple[RequestTimeline, ...]:
        """Snapshots of the history (oldest first), in-flight requests included; ``last`` limits the count."""
        items = list(self._history)
        if last is not None:
            items = items[-last:] if last > 0 else []
        return tuple(b.snapshot() for b in items)

    def active(self) -> dict[int | None, RequestTimeline]:
        """In-flight requests by slot."""
        return {slot: b.snapshot() for slot, b in self._active.items()}

    def find(self, task: int) -> RequestTimeline | None:
        """The most recent request with this task id, if still known."""
        b = self._by_task.get(task)
        return b.snapshot() if b is not None else None

    # --- feeding -----------------------------------------------------------------------------------

    def feed_many(self, events: list[ev.LogEvent]) -> None:
        """Feed events in log order."""
        for event in events:
            self.feed(event)

    def feed(self, event: ev.LogEvent) -> None:
        """Update the timelines with one event (events without slot/task meaning are ignored)."""
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def reset(self) -> None:
        """The server restarted: task ids start over, in-flight requests are abandoned."""
        for b in self._active.values():
            b.done = True
        self._active.clear()
        self._by_task.clear()
        self._pending_selection.clear()
        self._host = None
        self.host_cache_mib = None
        self.run += 1
        self.generation += 1

    # --- internals ---------------------------------------------------------------------------------

    def _builder(self, event: ev.LogEvent, create: bool = True) -> _RequestBuilder | None:
        task = event.task
        if task is not None:
            b = self._by_task.get(task)
            if b is not None:
                return b
        if event.slot is not None:
            b = self._active.get(event.slot)
            if b is not None and (task is None or b.task is None or b.task == task):
                if b.task is None and task is not None:
                    self._index(b, task)
                return b
        if not create or (event.slot is None and task is None):
            return None
        return self._start(event.slot, task, event.ts)

    def _start(self, slot: int | None, task: int | None, ts: float | None) -> _RequestBuilder:
        old = self._active.pop(slot, None)
        if old is not None and not old.done:
            old.done = True
        b = _RequestBuilder(slot=slot, started_ts=ts, run=self.run)
        sel = self._pending_selection.pop(slot, None)
        if sel is not None:
            b.selection, b.similarity, b.f_keep = sel.reason, sel.similarity, sel.f_keep
            b.started_ts = sel.ts if sel.ts is not None else ts
        host, self._host = self._host, None
        if host is not None:
            b.host_looked, b.host_restored, b.host_dropped = host.looked, host.restored, host.dropped
            b.host_refused, b.host_refused_limit_mib = host.refused, host.refused_mib
        if task is not None:
            self._index(b, task)
        self._active[slot] = b
        self._history.append(b)
        return b

    def _index(self, b: _RequestBuilder, task: int) -> None:
        b.task = task
        self._by_task[task] = b
        self._by_task.move_to_end(task)
        while len(self._by_task) > len(self._active) + _LATE_TASKS:
            self._by_task.popitem(last=False)

    def _finish(self, b: _RequestBuilder, ts: float | None) -> None:
        b.done = True
        b.ended_ts = ts
        if self._active.get(b.slot) is b:
            del self._active[b.slot]

    def _on_selected(self, e: ev.SlotSelected) -> None:
        self._pending_selection[e.slot] = e
        self.generation += 1

    def _on_launched(self, e: ev.TaskLaunched) -> None:
        self._start(e.slot, e.task, e.ts)
        self.generation += 1

    def _on_new_prompt(self, e: ev.NewPrompt) -> None:
        b = self._builder(e)
        if b is not None:
            b.n_ctx_slot, b.prompt_tokens = e.n_ctx_slot, e.n_prompt_tokens
            self.generation += 1

    def _on_cached(self, e: ev.CachedPrefix) -> None:
        b = self._builder(e)
        if b is not None and b.reused_tokens is None:  # later lines of the same task are batch positions
            b.reused_tokens = e.n_cached
            self.generation += 1

    def _on_checkpoint(self, e: ev.LogEvent) -> None:
        b = self._builder(e)
        if b is None:
            return
        if isinstance(e, ev.CheckpointCreated):
            b.checkpoints_created += 1
        elif isinstance(e, ev.CheckpointRestored):
            b.checkpoints_restored += 1
            if b.reused_tokens is None and e.n_past is not None:
                b.reused_tokens = e.n_past
        else:
            b.checkpoints_erased += 1
        self.generation += 1

    def _on_reprocess(self, e: ev.FullReprocess) -> None:
        b = self._builder(e)
        if b is not None:
            b.full_reprocess = True
            b.reused_tokens = 0
            self.generation += 1

    def _on_progress(self, e: ev.PromptProgress) -> None:
        b = self._builder(e)
        if b is not None:
            b.progress.append(ProgressSample(e.ts, e.n_tokens, e.progress, e.tokens_per_s))
            self.generation += 1

    def _on_timing(self, e: ev.Timing) -> None:
        b = self._builder(e)
        if b is None:
            return
        if e.phase == "prompt":
            b.new_tokens, b.prompt_ms, b.prompt_per_s = e.tokens, e.ms, e.tokens_per_s
        elif e.phase == "eval":
            b.generated_tokens, b.eval_ms, b.eval_per_s = e.tokens, e.ms, e.tokens_per_s
        else:
            b.total_ms = e.ms
        self.generation += 1

    def _on_draft(self, e: ev.DraftAcceptance) -> None:
        b = self._builder(e)
        if b is None:
            return
        b.draft_accepted, b.draft_generated = e.accepted, e.generated
        self.generation += 1

    def _on_shift(self, e: ev.ContextShift) -> None:
        b = self._builder(e)
        if b is not None:
            b.context_shifts += 1
            self.generation += 1

    def _on_released(self, e: ev.SlotReleased) -> None:
        b = self._builder(e)
        if b is not None:
            b.released_tokens, b.truncated = e.n_tokens, e.truncated
            self._finish(b, e.ts)
            self.generation += 1

    def _on_error(self, e: ev.ServerError) -> None:
        if e.task is None and e.slot is None:
            return
        # an error for a task never seen launching (quiet log) still deserves a row
        b = self._builder(e, create=e.task is not None)
        if b is not None:
            if b.slot is None and not b.done:
                self._finish(b, e.ts)
            b.error, b.error_n_prompt_tokens, b.error_n_ctx = e.message, e.n_prompt_tokens, e.n_ctx
            self.generation += 1

    def _on_cancel(self, e: ev.TaskCancelled) -> None:
        b = self._builder(e, create=False)
        if b is not None:
            b.cancelled = True
            if not b.done:
                self._finish(b, e.ts)
            self.generation += 1

    def _on_restart(self, e: ev.LogEvent) -> None:
        self.reset()

    def _on_raw(self, e: ev.Raw) -> None:
        line = host_cache_line(e)
        if line is None:
            return
        what, match = line
        if what == "off":
            self.host_cache_mib = HOST_CACHE_OFF
        elif what == "limit" and match is not None:
            self.host_cache_mib = float(match.group(1))
        else:  # selection-time lines: they belong to the task launched next
            fold(self._host if self._host is not None else self._new_host(), what, match)

    def _new_host(self) -> HostCacheActivity:
        self._host = HostCacheActivity()
        return self._host


_HANDLERS: dict[type, Any] = {
    ev.SlotSelected: Timeline._on_selected,
    ev.TaskLaunched: Timeline._on_launched,
    ev.NewPrompt: Timeline._on_new_prompt,
    ev.CachedPrefix: Timeline._on_cached,
    ev.CheckpointCreated: Timeline._on_checkpoint,
    ev.CheckpointRestored: Timeline._on_checkpoint,
    ev.CheckpointErased: Timeline._on_checkpoint,
    ev.FullReprocess: Timeline._on_reprocess,
    ev.PromptProgress: Timeline._on_progress,
    ev.Timing: Timeline._on_timing,
    ev.DraftAcceptance: Timeline._on_draft,
    ev.ContextShift: Timeline._on_shift,
    ev.SlotReleased: Timeline._on_released,
    ev.ServerError: Timeline._on_error,
    ev.TaskCancelled: Timeline._on_cancel,
    ev.ModelLoading: Timeline._on_restart,
    ev.BuildInfo: Timeline._on_restart,
    ev.Raw: Timeline._on_raw,
}
