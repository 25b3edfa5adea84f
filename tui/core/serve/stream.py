"""The feed stream of one client: hello, the catch-up a resume needs, then live events and pings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from tui.core.feed.codec import gpu_to_json, server_to_json
from tui.core.journal.reader import JournalReader
from tui.core.records import RequestRecord
from tui.core.serve.hub import EventHub, encode_line, encode_records, rows_line, status_to_json

BACKLOG_ROWS = 150  # what a local dashboard shows first (LiveDriver's backlog)
ROWS_BATCH = 1000
LOG_BATCH = 500
PING_S = 5.0


def _latest(path: Path, n: int) -> list[RequestRecord]:
    reader = JournalReader(path)
    try:
        return reader.latest(n)
    finally:
        reader.close()


def _finished(path: Path, ids: list[int]) -> list[RequestRecord]:
    """Of the rows a client shows as in flight, those whose final rows have replaced them since."""
    reader = JournalReader(path)
    try:
        return [r for r in reader.rows(ids) if not r.in_flight]
    finally:
        reader.close()


def _since(path: Path, row_id: int, limit: int) -> list[RequestRecord]:
    reader = JournalReader(path)
    try:
        return reader.since(row_id, limit)
    finally:
        reader.close()


async def feed_lines(
    hub: EventHub,
    journal: Path,
    epoch: str | None,
    after: int | None,
    rows_after: int,
    flying: list[int] | None = None,
) -> AsyncIterator[bytes]:
    """Every NDJSON line this client gets, until it goes away or falls behind the ring (then it resumes)."""
    resumed = hub.can_resume(epoch, after)
    snap = hub.snapshot()  # taken before any await: the live events below start right after it
    cursor = after if resumed and after is not None else snap.last_id
    hello = {"epoch": hub.epoch, "resumed": resumed, "first_id": hub.first_id, "last_id": snap.last_id}
    yield encode_line(snap.last_id, "hello", hello)
    sent_rows = rows_after
    if not resumed:
        if rows_after < 0:
            records = await asyncio.to_thread(_latest, journal, BACKLOG_ROWS)
            yield rows_line(snap.last_id, encode_records(records), initial=True)
            sent_rows = records[-1].id if records else 0
        else:
            while batch := await asyncio.to_thread(_since, journal, sent_rows, ROWS_BATCH):
                yield rows_line(snap.last_id, encode_records(batch), initial=False)
                sent_rows = batch[-1].id
                if len(batch) < ROWS_BATCH:
                    break
            if flying:
                finished = await asyncio.to_thread(_finished, journal, flying)
                if finished:
                    yield rows_line(snap.last_id, encode_records(finished), initial=False, replaced=True)
        for start in range(0, len(snap.log_lines), LOG_BATCH):
            yield encode_line(snap.last_id, "log", {"lines": list(snap.log_lines[start : start + LOG_BATCH])})
        if snap.log_backlog_read:
            yield encode_line(snap.last_id, "log_backlog_read", {})
        if snap.server is not None:
            yield encode_line(snap.last_id, "server", server_to_json(snap.server))
        if snap.gpu is not None:
            yield encode_line(snap.last_id, "gpu", gpu_to_json(snap.gpu))
        for status in snap.statuses:
            yield encode_line(snap.last_id, "status", status_to_json(status))
    last_sent = time.monotonic()
    while True:
        events = hub.events_after(cursor)
        if events is None:
            return  # fell behind: the client reconnects and catches up from the journal
        for event in events:
            cursor = event.id
            line = event.line_after(sent_rows)
            if line is None:
                continue
            if event.rows:
                sent_rows = max(sent_rows, event.rows[-1][0])
            yield line
            last_sent = time.monotonic()
        if not events:
            idle = time.monotonic() - last_sent
            if idle >= PING_S:
                yield encode_line(cursor, "ping", {})
                last_sent = time.monotonic()
                continue
            await hub.wait_new(PING_S - idle)
