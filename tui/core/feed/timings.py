"""Fill a journal row's missing prompt/generation speeds from the server log's per-task timings."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from tui.core.records import RequestRecord

if TYPE_CHECKING:
    from tui.core.logs.timeline import RequestTimeline

WallTime = Callable[[float | None], float | None]
# The log's clock is anchored on line arrival (a little late) and the proxy stamps the request itself.
CLOCK_SLACK_S = 0.5


def ended_before(record: RequestRecord, task: RequestTimeline, wall_time: WallTime | None) -> bool:
    """Whether the task ended before the request started (an earlier request of the same size)."""
    ended = wall_time(task.ended_ts) if wall_time is not None else None
    return ended is not None and ended + CLOCK_SLACK_S < record.ts


def needs_timings(record: RequestRecord) -> bool:
    """Anthropic responses carry no timings (nor draft counts, filled in the same join): the log has them."""
    usage = record.usage
    return usage.prompt_tokens is not None and (
        usage.prompt_per_second is None or usage.gen_per_second is None
    )


def matches(record: RequestRecord, task: RequestTimeline) -> bool:
    """Same prompt size (or, without TRACE lines, same new and generated token counts)."""
    usage = record.usage
    if not task.done or task.prompt_per_s is None:
        return False
    if task.prompt_tokens is not None and usage.prompt_tokens is not None:
        return task.prompt_tokens == usage.prompt_tokens
    new = None if usage.prompt_tokens is None else usage.prompt_tokens - (usage.cached_tokens or 0)
    return (
        task.new_tokens is not None
        and task.new_tokens == new
        and task.generated_tokens == usage.output_tokens
    )


def with_timings(
    record: RequestRecord,
    tasks: Iterable[RequestTimeline],
    taken: set[int],
    wall_time: WallTime | None = None,
) -> RequestRecord | None:
    """The record with speeds from the newest matching task not matched before (None: no match yet).

    A task that ended before the request started is never joined (title requests repeat one size every
    turn): the row waits for its own task's timing line instead.
    """
    for task in tasks:
        key = task.task if task.task is not None else id(task)
        if key in taken or not matches(record, task) or ended_before(record, task, wall_time):
            continue
        taken.add(key)
        usage = record.usage
        filled = dataclasses.replace(
            usage,
            prompt_per_second=usage.prompt_per_second
            if usage.prompt_per_second is not None
            else task.prompt_per_s,
            gen_per_second=usage.gen_per_second if usage.gen_per_second is not None else task.eval_per_s,
            prompt_ms=usage.prompt_ms if usage.prompt_ms is not None else task.prompt_ms,
            gen_ms=usage.gen_ms if usage.gen_ms is not None else task.eval_ms,
            draft_tokens=usage.draft_tokens if usage.draft_tokens is not None else task.draft_generated,
            draft_accepted=usage.draft_accepted if usage.draft_accepted is not None else task.draft_accepted,
        )
        return dataclasses.replace(record, usage=filled)
    return None
