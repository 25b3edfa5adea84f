"""Server-side cache-break explanations from log tasks: the paths the real-server tests cannot stage."""

from __future__ import annotations

import dataclasses
from typing import Any

from tui.core.anatomy.cache_break_server import explain_from_log
from tui.core.logs.timeline import RequestTimeline
from tui.core.records import CacheBreak, RequestRecord, Usage

MISS = CacheBreak("server cache", "prefix unchanged ...", 8_071, 46, cause="server")


def task(task_id: int, slot: int, prompt: int, reused: int, run: int = 1) -> RequestTimeline:
    values: dict[str, Any] = {f.name: None for f in dataclasses.fields(RequestTimeline)}
    counters = ("checkpoints_created", "checkpoints_restored", "checkpoints_erased", "context_shifts")
    values.update(dict.fromkeys(counters, 0))
    values.update(host_looked=False, host_restored=False, host_dropped=0)
    values.update(done=True, full_reprocess=False, progress=(), cancelled=False, run=run)
    values.update(task=task_id, slot=slot, prompt_tokens=prompt, reused_tokens=reused, selection="lru")
    return RequestTimeline(**values)


def row(
    rid: int, prompt: int, cached: int, cb: CacheBreak | None = None, session: str = "s1"
) -> RequestRecord:
    usage = Usage(prompt_tokens=prompt, cached_tokens=cached)
    return RequestRecord(rid, 0.0, "POST", "/v1/messages", 200, session, "main", usage=usage, cache_break=cb)


def test_same_slot_nothing_in_between_names_the_other_causes() -> None:
    prev, cur = row(1, 8_071, 0), row(2, 8_400, 46, MISS)
    tasks = [task(0, 0, 8_071, 0), task(5, 0, 8_400, 46)]
    cb = explain_from_log(cur, prev, tasks, [prev, cur])
    assert cb is not None and cb.where == "slot 0"
    text = cb.description
    assert text.startswith("slot 0 ran nothing else in between, yet reused 46: the cache was not kept"), text
    assert text.endswith(": 8,025 tokens of this conversation's cache lost")


def test_a_task_without_journal_row_is_another_client() -> None:
    prev, cur = row(1, 8_071, 0), row(2, 8_400, 46, MISS)
    tasks = [task(0, 0, 8_071, 0), task(3, 0, 900, 0), task(5, 0, 8_400, 46)]
    cb = explain_from_log(cur, prev, tasks, [prev, cur])
    assert cb is not None
    assert (
        "ran a request with no journal row (task 3, 900 tokens; another client?) in between" in cb.description
    )


def test_host_cache_that_dropped_or_no_longer_held_the_conversation_is_named() -> None:
    prev, cur = row(1, 8_071, 0), row(2, 8_400, 46, MISS)
    other = dataclasses.replace(task(3, 0, 900, 0), host_looked=True, host_dropped=2)
    me = dataclasses.replace(task(5, 0, 8_400, 46), host_looked=True)
    cb = explain_from_log(cur, prev, [task(0, 0, 8_071, 0), other, me], [prev, cur], 8192.0)
    assert cb is not None and "and the host prompt cache dropped 2 older entries" in cb.description
    cb = explain_from_log(cur, prev, [task(0, 0, 8_071, 0), me], [prev, cur], 8192.0)
    assert cb is not None and "(the host prompt cache no longer held it): 8,025 tokens" in cb.description
    cb = explain_from_log(cur, prev, [task(0, 0, 8_071, 0), me], [prev, cur], 0.0)
    assert cb is not None and "(the host prompt cache is off (--cache-ram 0)): 8,025" in cb.description


def test_waits_for_the_log_and_leaves_content_breaks_alone() -> None:
    prev, cur = row(1, 8_071, 0), row(2, 8_400, 46, MISS)
    assert explain_from_log(cur, prev, [task(0, 0, 8_071, 0)], [prev, cur]) is None  # task not logged yet
    edited = dataclasses.replace(cur, cache_break=dataclasses.replace(MISS, cause="content"))
    assert explain_from_log(edited, prev, [task(0, 0, 8_071, 0), task(5, 0, 8_400, 46)], [prev]) is None


def test_findings_tell_server_losses_apart_from_edits() -> None:
    from tui.core.insight.findings import cache_breaks

    (finding,) = cache_breaks([row(2, 8_400, 46, MISS)], None, {})
    assert finding.data["cause"] == "server cache lost" and finding.data["tokens"] == 8_400 - 46
    assert "the server dropped its cache" in finding.lines[-1]
    assert finding.apply.startswith("more slots (-np)")


def test_same_size_requests_of_two_sessions_are_told_apart_by_the_logs_clock() -> None:
    """alpha and beta send prompts of the same size; beta's task is the newest of that size when alpha's
    next turn is explained, but only alpha's started while alpha's request ran."""
    alpha = dataclasses.replace(row(1, 539, 0, session="alpha"), ts=1000.0, total_ms=800.0)
    beta = dataclasses.replace(row(2, 539, 0, session="beta"), ts=1003.0, total_ms=800.0)
    gamma = dataclasses.replace(row(3, 619, 51, session="gamma"), ts=1006.0, total_ms=800.0)
    again = dataclasses.replace(row(4, 563, 51, MISS, session="alpha"), ts=1009.0, total_ms=800.0)
    tasks = [
        dataclasses.replace(task(0, 1, 539, 0), started_ts=0.2),
        dataclasses.replace(task(2, 0, 539, 0), started_ts=3.2),
        dataclasses.replace(task(4, 1, 619, 51), started_ts=6.2),
        dataclasses.replace(task(6, 0, 563, 51), started_ts=9.2),
    ]
    records = [alpha, beta, gamma, again]
    cb = explain_from_log(
        again, alpha, tasks, records, wall_time=lambda ts: None if ts is None else 1000.0 + ts
    )
    assert (
        cb is not None
        and "not slot 1 that held its cache; session gamma's main request (task 4" in cb.description
    )
    # without the clock the newest task of that size is taken: beta's, on the slot alpha then got
    blind = explain_from_log(again, alpha, tasks, records)
    assert blind is not None and "session gamma" not in blind.description
