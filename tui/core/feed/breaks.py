"""Rows whose cache was lost on the server, re-explained once the log shows their task (eviction, restart)."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tui.core.anatomy.cache_break_server import explain_from_log, explained_by_log
from tui.core.feed.slot_polls import PolledTasks
from tui.core.records import CacheBreak, RequestRecord

if TYPE_CHECKING:
    from tui.core.feed.timings import WallTime
    from tui.core.logs.timeline import Timeline

_KEEP = 256  # recent rows kept to find a session's previous request and name other sessions


class BreakExplainer:
    """Keeps the newest version of recent rows and the explanations the log gave them."""

    def __init__(self) -> None:
        self._rows: OrderedDict[int, RequestRecord] = OrderedDict()
        self._explained: dict[int, CacheBreak] = {}
        self._waiting: list[int] = []
        # Per timeline (router mode: one per model's child), the (generation, rows noted) last tried.
        self._tried_at: dict[int, tuple[int, int]] = {}
        self._noted = 0

    def note(self, records: Sequence[RequestRecord]) -> list[RequestRecord]:
        """Remember rows about to be shown; returns them with any explanation already found."""
        out = []
        for record in records:
            cb = self._explained.get(record.id)
            if cb is not None:
                record = dataclasses.replace(record, cache_break=cb)
            elif record.cache_break is not None and record.cache_break.cause == "server":
                if explained_by_log(record.cache_break):  # a journal row an earlier dashboard explained
                    self._explained[record.id] = record.cache_break
                elif record.id not in self._waiting:
                    self._waiting.append(record.id)
            self._rows[record.id] = record
            self._rows.move_to_end(record.id)
            out.append(record)
            self._noted += 1
        while len(self._rows) > _KEEP:
            old, _ = self._rows.popitem(last=False)
            self._explained.pop(old, None)
        self._waiting = [i for i in self._waiting if i in self._rows]
        return out

    def explain(
        self, timeline: Timeline | PolledTasks, wall_time: WallTime | None = None, model: str | None = None
    ) -> list[RequestRecord]:
        """Waiting rows the log (or, with no log, the /slots polls) now explains, with their new explanation
        (cheap when nothing changed); `wall_time` is the log's clock, to join same-size requests of two
        sessions to the right tasks. `model` (router mode): the timeline is that model's child's, so only
        its rows are explained, and only its rows can have taken its slots."""
        done: list[RequestRecord] = []
        tried = (timeline.generation, self._noted)
        if not self._waiting or self._tried_at.get(id(timeline)) == tried:
            return done
        if len(self._tried_at) > _KEEP:  # timelines of children long gone
            self._tried_at.clear()
        self._tried_at[id(timeline)] = tried
        tasks = timeline.requests()
        rows = [r for r in self._rows.values() if model is None or r.model == model]
        for rid in list(self._waiting):
            record = self._rows[rid]
            if model is not None and record.model != model:
                continue
            previous = self._previous(record, rows)
            cb = explain_from_log(
                record, previous, tasks, rows, timeline.host_cache_mib, wall_time,
                polled=isinstance(timeline, PolledTasks),
            )  # fmt: skip
            if cb is None:
                continue
            self._waiting.remove(rid)
            self._explained[rid] = cb
            record = dataclasses.replace(record, cache_break=cb)
            self._rows[rid] = record
            done.append(record)
        return done

    @staticmethod
    def _previous(record: RequestRecord, rows: Sequence[RequestRecord]) -> RequestRecord | None:
        for row in reversed(rows):
            if row.id < record.id and row.session_id == record.session_id and row.kind == record.kind:
                return row if row.usage.prompt_tokens is not None else None
        return None
