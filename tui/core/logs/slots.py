"""Live per-slot state from the log: current task, phase, progress and the slot's context checkpoints."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from tui.core.logs import events as ev
from tui.core.logs.state import CheckpointMark, SlotState

MAX_CHECKPOINTS_KEPT = 64  # the server default keeps 32 per slot; erased ones stay visible a while


@dataclass
class _SlotBuilder:
    slot: int
    n_ctx: int | None = None
    task: int | None = None
    last_task: int | None = None
    phase: str = "idle"
    progress: float | None = None
    prompt_tokens: int | None = None
    reused_tokens: int | None = None
    n_tokens: int | None = None
    n_gen: int | None = None
    truncated: bool | None = None
    checkpoints: deque[CheckpointMark] = field(default_factory=lambda: deque(maxlen=MAX_CHECKPOINTS_KEPT))
    updated_ts: float | None = None

    def snapshot(self) -> SlotState:
        return SlotState(
            self.slot,
            self.n_ctx,
            self.task,
            self.last_task,
            self.phase,
            self.progress,
            self.prompt_tokens,
            self.reused_tokens,
            self.n_tokens,
            self.n_gen,
            self.truncated,
            tuple(self.checkpoints),
            self.updated_ts,
        )

    def begin(self, task: int | None) -> None:
        self.task = task
        self.phase = "prompt"
        self.progress = 0.0
        self.prompt_tokens = self.reused_tokens = self.n_gen = None
        self.truncated = None


class SlotTracker:
    """Feeds on events; keeps one SlotState builder per slot id seen (or announced at startup)."""

    def __init__(self) -> None:
        self._slots: dict[int, _SlotBuilder] = {}
        self._task_slot: dict[int, int] = {}
        self.generation = 0

    def slots(self) -> tuple[SlotState, ...]:
        """Snapshots of all known slots, by slot id."""
        return tuple(self._slots[k].snapshot() for k in sorted(self._slots))

    def get(self, slot: int) -> SlotState | None:
        """One slot's snapshot."""
        b = self._slots.get(slot)
        return b.snapshot() if b is not None else None

    def reset(self) -> None:
        """The server restarted: forget tasks and checkpoints (slot sizes come again at startup)."""
        self._slots.clear()
        self._task_slot.clear()
        self.generation += 1

    def feed_many(self, events: list[ev.LogEvent]) -> None:
        """Feed events in log order."""
        for event in events:
            self.feed(event)

    def _slot(self, slot: int) -> _SlotBuilder:
        b = self._slots.get(slot)
        if b is None:
            if len(self._slots) >= 4096:  # absurd slot ids from a garbled log must not grow memory
                self._slots.pop(next(iter(self._slots)))
            b = self._slots[slot] = _SlotBuilder(slot)
        return b

    def feed(self, e: ev.LogEvent) -> None:  # noqa: C901 - one flat dispatch over event types reads best
        """Update the slot states with one event."""
        if isinstance(e, ev.ModelLoading | ev.BuildInfo):
            self.reset()
            return
        if isinstance(e, ev.ServerInit):
            if e.n_ctx_slot is not None:
                for i in range(min(e.n_slots, 4096)):
                    self._slot(i).n_ctx = e.n_ctx_slot
            self.generation += 1
            return
        if isinstance(e, ev.AllSlotsIdle):
            for b in self._slots.values():
                if b.phase != "idle":
                    b.phase, b.task, b.progress = "idle", None, None
            self.generation += 1
            return
        slot = e.slot
        if slot is None and e.task is not None:
            slot = self._task_slot.get(e.task)
        if slot is None:
            return
        b = self._slot(slot)
        b.updated_ts = e.ts if e.ts is not None else b.updated_ts
        self.generation += 1
        if isinstance(e, ev.SlotInit):
            b.n_ctx = e.n_ctx_slot
        elif isinstance(e, ev.SlotSelected):
            if not b.phase.startswith(("prompt", "generating")):
                b.phase = "queued"
        elif isinstance(e, ev.TaskLaunched):
            b.begin(e.task)
            self._remember(e.task, slot)
        elif isinstance(e, ev.NewPrompt):
            if b.task != e.task or b.phase not in ("prompt", "generating"):
                b.begin(e.task)
                self._remember(e.task, slot)
            b.n_ctx = e.n_ctx_slot
            b.prompt_tokens = e.n_prompt_tokens
        elif isinstance(e, ev.CachedPrefix):
            if b.reused_tokens is None:
                b.reused_tokens = e.n_cached
            if b.prompt_tokens:
                b.progress = min(1.0, e.n_cached / b.prompt_tokens)
            b.n_tokens = e.n_cached
        elif isinstance(e, ev.PromptProgress):
            b.phase = "prompt"
            b.progress = e.progress
            b.n_tokens = e.n_tokens
        elif isinstance(e, ev.PromptDone):
            b.phase, b.progress, b.n_tokens = "generating", 1.0, e.n_tokens
        elif isinstance(e, ev.GenProgress):
            b.phase, b.progress, b.n_gen = "generating", 1.0, e.n_gen
        elif isinstance(e, ev.Timing):
            b.phase = "generating" if b.phase == "prompt" else b.phase
            if e.phase == "eval":
                b.n_gen = e.tokens
        elif isinstance(e, ev.SlotReleased):
            b.last_task = b.task if b.task is not None else e.task
            b.phase, b.task, b.progress = "idle", None, None
            b.n_tokens, b.truncated = e.n_tokens, e.truncated
        elif isinstance(e, ev.SlotPurged):
            b.n_tokens = 0
        elif isinstance(e, ev.CheckpointCreated):
            b.checkpoints.append(CheckpointMark(e.pos_min, e.pos_max, e.n_tokens, e.size_mib, e.task, "live"))
        elif isinstance(e, ev.CheckpointRestored):
            self._mark(b, e.pos_min, e.pos_max, restored=True, reason=None)
        elif isinstance(e, ev.CheckpointErased):
            self._mark(b, e.pos_min, e.pos_max, restored=False, reason=e.reason, n_tokens=e.n_tokens)

    def _remember(self, task: int | None, slot: int) -> None:
        if task is None:
            return
        self._task_slot[task] = slot
        if len(self._task_slot) > 256:
            self._task_slot.pop(next(iter(self._task_slot)))

    @staticmethod
    def _mark(
        b: _SlotBuilder,
        pos_min: int | None,
        pos_max: int | None,
        *,
        restored: bool,
        reason: str | None,
        n_tokens: int | None = None,
    ) -> None:
        # newest first: the same range can be checkpointed again after an erase
        for i in range(len(b.checkpoints) - 1, -1, -1):
            c = b.checkpoints[i]
            if c.state == "erased":
                continue
            same_range = pos_min is not None and c.pos_min == pos_min and c.pos_max == pos_max
            same_tokens = pos_min is None and n_tokens is not None and c.n_tokens == n_tokens
            if same_range or same_tokens:
                if restored:
                    b.checkpoints[i] = replace(c, state="restored", restores=c.restores + 1)
                else:
                    b.checkpoints[i] = replace(c, state="erased", erase_reason=reason)
                return
