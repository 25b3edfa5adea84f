"""Slot tasks seen by polling GET /slots, for explaining cache losses when no server log is followed."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence

from tui.core.logs.state import SlotState
from tui.core.logs.timeline import RequestTimeline
from tui.core.poll.snapshots import SlotSnapshot

MAX_TASKS = 256


def prompt_size(s: SlotSnapshot) -> int | None:
    """A busy slot's prompt size, known once it generates: while the prompt runs, n_prompt_tokens counts
    what is in the KV so far; then it is the prompt plus what was generated."""
    return s.n_prompt_tokens - s.n_decoded if s.is_processing and s.n_decoded else None


def _task(slot: int, task: int, ts: float, run: int) -> RequestTimeline:
    return RequestTimeline(
        slot=slot, task=task, started_ts=ts, ended_ts=None, done=False, selection=None, similarity=None,
        f_keep=None, n_ctx_slot=None, prompt_tokens=None, reused_tokens=None, new_tokens=None,
        generated_tokens=None, prompt_ms=None, prompt_per_s=None, eval_ms=None, eval_per_s=None,
        total_ms=None, checkpoints_created=0, checkpoints_restored=0, checkpoints_erased=0,
        full_reprocess=False, context_shifts=0, progress=(), released_tokens=None, truncated=None,
        cancelled=False, error=None, error_n_prompt_tokens=None, error_n_ctx=None, run=run,
    )  # fmt: skip


class PolledTasks:
    """The tasks each slot ran, as successive /slots polls showed them (a timeline without a log).

    An idle slot still reports its last task (`id_task`) and the tokens that task left in the KV
    (`n_prompt_tokens`: prompt plus generated, less the last one or two sampled); a generating one its
    prompt size (`n_prompt_tokens - n_decoded`); a busy one its reused prefix (`n_prompt_tokens_cache`).
    A task that started and ended between two polls on a slot that then ran another is never seen: the
    poller reads /slots right after every request the proxy saw end, so that takes a third client.
    """

    host_cache_mib: float | None = None  # only the log tells the host prompt cache's limit

    def __init__(self, max_tasks: int = MAX_TASKS) -> None:
        self._tasks: OrderedDict[tuple[int, int], RequestTimeline] = OrderedDict()  # (run, task id)
        self._max = max_tasks
        self._run = 0
        self._last_task = -1
        self.generation = 0

    def requests(self, last: int | None = None) -> tuple[RequestTimeline, ...]:
        """The tasks seen, oldest first (the newest `last` ones when given)."""
        tasks = tuple(self._tasks.values())
        return tasks[-last:] if last else tasks

    def observe(self, slots: Sequence[SlotSnapshot], ts: float) -> bool:
        """Fold one poll in (wall-clock `ts`); True when it showed a new task or a change to one."""
        seen = sorted((s for s in slots if s.id_task is not None), key=lambda s: s.id_task or 0)
        if not seen:
            return False
        if (seen[-1].id_task or 0) < self._last_task:  # task ids start again from 0: the server restarted
            self._run += 1
        self._last_task = seen[-1].id_task or 0
        changed = False
        for s in seen:
            changed = self._fold(s, ts) or changed
        if changed:
            self.generation += 1
        return changed

    def _fold(self, s: SlotSnapshot, ts: float) -> bool:
        key = (self._run, s.id_task or 0)
        old = self._tasks.get(key)
        if old is None:
            old = _task(s.id, s.id_task or 0, ts, self._run)
            self._tasks[key] = old
            while len(self._tasks) > self._max:
                self._tasks.popitem(last=False)
            changed = True
        else:
            changed = False
        if s.is_processing:
            prompt = prompt_size(s)
            seen = max(old.seen_tokens or 0, s.n_prompt_tokens) if not s.n_decoded else old.seen_tokens
            new = dataclasses.replace(
                old,
                prompt_tokens=old.prompt_tokens or prompt,
                seen_tokens=seen or None,
                reused_tokens=old.reused_tokens if old.reused_tokens is not None else s.n_prompt_tokens_cache,
            )
        else:
            new = dataclasses.replace(old, done=True, released_tokens=s.n_prompt_tokens or None)
        if new != old:
            self._tasks[key] = new
            changed = True
        return changed


def polled_slot_states(slots: Sequence[SlotSnapshot], ts: float) -> tuple[SlotState, ...]:
    """What each slot is doing as /slots shows it, in the log's terms: while the prompt runs, the tokens in
    the KV so far (n_tokens) but not the prompt's size, so no share or ETA; the size once it generates."""
    states = []
    for s in slots:
        busy = s.is_processing and s.id_task is not None
        phase = ("generating" if s.n_decoded else "prompt") if busy else "idle"
        states.append(
            SlotState(
                slot=s.id, n_ctx=s.n_ctx or None, task=s.id_task if busy else None,
                last_task=None if busy else s.id_task, phase=phase, progress=None,
                prompt_tokens=prompt_size(s) if busy else None,
                reused_tokens=s.n_prompt_tokens_cache if busy else None,
                n_tokens=s.n_prompt_tokens if s.id_task is not None else None,
                n_gen=s.n_decoded if busy else None, truncated=None, checkpoints=(), updated_ts=ts,
            )  # fmt: skip
        )
    return tuple(states)
