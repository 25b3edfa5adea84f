"""Team mode: whose request each slot last served (so whose session its KV cache holds)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tui.core.feed.timings import WallTime, ended_before
from tui.core.records import RequestRecord

if TYPE_CHECKING:
    from tui.core.logs.timeline import RequestTimeline


def slot_users(
    records: Sequence[RequestRecord], tasks: Iterable[RequestTimeline], wall_time: WallTime | None = None
) -> tuple[tuple[int, str], ...]:
    """(slot, user) for each slot whose newest finished task matches journal rows of exactly one user.

    A task matches a row of the same prompt size that had started before the task ended (the rule the
    speeds use). When rows of two users match one task the slot is left out rather than guessed.
    """
    owners: dict[int, str] = {}
    for task in tasks:  # newest first
        if task.slot is None or task.slot in owners or not task.done or task.prompt_tokens is None:
            continue
        users = {
            r.user
            for r in records
            if r.user and r.usage.prompt_tokens == task.prompt_tokens and not ended_before(r, task, wall_time)
            and not _started_after(r, task, wall_time)
        }
        if len(users) == 1:
            owners[task.slot] = users.pop()
        else:
            owners[task.slot] = ""  # unknown or ambiguous: this slot's newest task is not attributed
    return tuple(sorted((slot, user) for slot, user in owners.items() if user))


def _started_after(record: RequestRecord, task: RequestTimeline, wall_time: WallTime | None) -> bool:
    """Whether the request was sent after the task ended (a later request of the same size)."""
    ended = wall_time(task.ended_ts) if wall_time is not None else None
    return ended is not None and record.ts > ended + 1.0
