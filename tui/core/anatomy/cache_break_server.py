"""Explain a server-side cache miss (unchanged prefix, little reused) from the server log's tasks."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tui.core.logs.host_cache import HOST_CACHE_OFF
from tui.core.records import CacheBreak, RequestRecord

if TYPE_CHECKING:
    from collections.abc import Callable

    from tui.core.logs.timeline import RequestTimeline

    WallTime = Callable[[float | None], float | None]

_CLOCK_SLACK_S = 5.0  # the log's clock is estimated from when its lines arrived

# How every server-cause explanation starts (the worker's and the log's), for readers that group causes.
SERVER_BREAK_OPENINGS = ("prefix unchanged", "server restarted", "served by slot", "evicted:", "slot ")
UNEXPLAINED_OPENING = SERVER_BREAK_OPENINGS[0]  # the worker's text, before the log tells what happened


def explained_by_log(cb: CacheBreak | None) -> bool:
    """Whether a server-cause break already carries the log's explanation (worth keeping in the journal)."""
    return cb is not None and cb.cause == "server" and not cb.description.startswith(UNEXPLAINED_OPENING)


def _task_of(
    record: RequestRecord, tasks: Sequence[RequestTimeline], before: int, wall_time: WallTime | None = None
) -> int | None:
    """Index (below `before`) of the newest task whose prompt size and reuse are the record's; with the log's
    clock, one that started while the request ran wins (two sessions' requests can have the same size)."""
    usage = record.usage
    if usage.prompt_tokens is None:
        return None
    found: list[int] = []
    for i in range(min(before, len(tasks)) - 1, -1, -1):
        task = tasks[i]
        if not _same_size(record, task):
            continue
        if usage.cached_tokens is None or task.reused_tokens in (None, usage.cached_tokens):
            if wall_time is None or record.total_ms is None:
                return i
            found.append(i)
    # The estimated clock is off by about the same for every task: the task that started nearest the
    # request's arrival is its own, unless even that one is far off (a log read after the fact).
    best: tuple[float, int] | None = None
    for i in found:
        started = wall_time(tasks[i].started_ts) if wall_time is not None else None
        if started is not None and (best is None or abs(started - record.ts) < best[0]):
            best = (abs(started - record.ts), i)
    if best is not None and best[0] <= (record.total_ms or 0) / 1000 + _CLOCK_SLACK_S:
        return best[1]
    return found[0] if found else None


def _same_size(record: RequestRecord, task: RequestTimeline) -> bool:
    """Whether a task has the record's prompt size; a task seen only idle by /slots polls tells the tokens it
    left in the slot instead (prompt plus generated, less the last one or two sampled: b11434 keeps P+O-1
    after a natural stop and P+O-2 after a cut at max_tokens), or, seen only mid-prompt, at most its size."""
    usage = record.usage
    if usage.prompt_tokens is None:
        return False
    if task.prompt_tokens is not None:
        return task.prompt_tokens == usage.prompt_tokens
    left = usage.prompt_tokens + (usage.output_tokens or 0)
    if task.released_tokens is not None:
        return left - 2 <= task.released_tokens <= left
    # Seen only mid-prompt: what was in the KV then (the whole prompt when it fit one batch).
    return task.seen_tokens is not None and 0 < task.seen_tokens <= usage.prompt_tokens


def _who(task: RequestTimeline, records: Sequence[RequestRecord], wall_time: WallTime | None = None) -> str:
    """Whose request a task served, as far as the journal rows say, with its task id and size."""
    size = task.released_tokens or task.prompt_tokens
    facts = f"task {task.task}" + (f", {size:,} tokens" if size else "")
    matches = [r for r in records if _same_size(r, task)]
    if size is None and task.seen_tokens:
        # Seen only mid-prompt, a size any larger request matches too: the newest request that had
        # arrived when the task was first seen is its own.
        facts += f", at least {task.seen_tokens:,} tokens"
        started = wall_time(task.started_ts) if wall_time is not None else None
        if started is not None:
            matches = [r for r in matches if r.ts <= started]
    if matches:
        record = max(matches, key=lambda r: (r.ts, r.id))
        return f"session {record.session_id or '?'}'s {record.kind} request ({facts})"
    return f"a request with no journal row ({facts}; another client?)"


def _host_cache(
    prev: RequestTimeline, since: Sequence[RequestTimeline], me: RequestTimeline, limit_mib: float | None
) -> str | None:
    """Why the host prompt cache (--cache-ram) did not give the conversation back, from the log's lines at
    the slot selections since its previous task (None: the log says nothing about the host cache)."""
    if limit_mib == HOST_CACHE_OFF:
        return "the host prompt cache is off (--cache-ram 0)"
    kept = prev.released_tokens or prev.prompt_tokens
    refused = [t for t in since if t.host_refused is not None]
    mine = next((t for t in refused if t.host_refused == kept), refused[0] if refused else None)
    if mine is not None:
        limit = mine.host_refused_limit_mib if mine.host_refused_limit_mib is not None else limit_mib
        over = f" --cache-ram {limit:g} MiB" if limit is not None else " its size limit"
        return (
            f"the host prompt cache could not keep its {mine.host_refused:,} tokens"
            f" (their state is over{over})"
        )
    dropped = sum(t.host_dropped for t in since)
    if dropped:
        entries = "entry" if dropped == 1 else "entries"
        return (
            f"the host prompt cache dropped {dropped} older {entries} to make room (its limits),"
            " this one among them"
        )
    if me.host_looked:
        return "the host prompt cache no longer held it"
    return None


def explain_from_log(
    record: RequestRecord,
    previous: RequestRecord | None,
    tasks: Sequence[RequestTimeline],
    records: Sequence[RequestRecord],
    host_cache_mib: float | None = None,
    wall_time: WallTime | None = None,
    polled: bool = False,
) -> CacheBreak | None:
    """The record's server-cause break told from the log (None: the log does not show its task yet).

    `tasks` are the log's tasks oldest first; `records` the journal rows known, to name the sessions
    whose tasks took the slot; `host_cache_mib` the host prompt cache's limit the log gave (0: off);
    `wall_time` the log's clock (epoch seconds of a log timestamp), to tell same-size requests apart;
    `polled`: the tasks are what /slots polls saw (no log followed), which tell nothing of the host cache.
    """
    cb = record.cache_break
    if cb is None or cb.cause != "server":
        return None
    me_at = _task_of(record, tasks, len(tasks), wall_time)
    if me_at is None:
        return None
    me = tasks[me_at]
    reused = record.usage.cached_tokens or 0
    lost = max(0, cb.reusable_prefix_tokens - reused)
    prev_at = _task_of(previous, tasks, me_at, wall_time) if previous is not None else None
    prev = tasks[prev_at] if prev_at is not None else None
    head = f"{lost:,} tokens of this conversation's cache lost"
    if (prev is not None and prev.run != me.run) or (
        prev is None and any(t.run < me.run for t in tasks[:me_at])
    ):
        return _with(cb, "server restart", f"server restarted between the two requests: {head}")
    if prev is None:
        return None
    others = [t for t in tasks[prev_at + 1 : me_at] if t.slot == prev.slot]  # type: ignore[operator]
    names = "; ".join(_who(t, records, wall_time) for t in others[-3:])
    host = _host_cache(prev, tasks[prev_at + 1 : me_at + 1], me, host_cache_mib)  # type: ignore[operator]
    if me.slot != prev.slot:
        taken = f"; {names} took that slot" if names else ""
        how = f" (picked by {me.selection})" if me.selection else ""
        host_text = f"; {host}" if host else ""
        return _with(
            cb,
            f"slot {me.slot}",
            f"served by slot {me.slot}{how}, not slot {prev.slot} that held its cache{taken}{host_text}:"
            f" {head}",
        )
    if others:
        host_text = host or (
            "the host prompt cache did not restore it"
            + (
                " (no server log is followed to tell why)"
                if polled
                else " (--cache-ram off, or its limits too small for this prompt)"
            )
        )
        return _with(
            cb, f"slot {me.slot}", f"evicted: slot {me.slot} ran {names} in between, and {host_text}: {head}"
        )
    why = (
        f"{host}"
        if host
        else "checkpoints, slot save/erase, a host-cache miss, or a chat template that renders earlier turns"
        " differently once a new one follows" + (", or a request between two polls" if polled else "")
    )
    seen = " that /slots polls saw" if polled else ""
    return _with(
        cb,
        f"slot {me.slot}",
        f"slot {me.slot} ran nothing else{seen} in between, yet reused {reused:,}: the cache was not kept"
        f" ({why}): {head}",
    )


def _with(cb: CacheBreak, where: str, description: str) -> CacheBreak:
    return dataclasses.replace(cb, where=where, description=description)
