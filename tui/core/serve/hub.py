"""The serve side's feed: what LiveDriver observes, kept as numbered events for remote dashboards."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tui.core.feed.codec import gpu_to_json, record_to_json, server_to_json
from tui.core.feed.feed import DashboardFeed, FeedDriver
from tui.core.feed.updates import SourceStatus
from tui.core.poll.snapshots import GpuSnapshot, ServerSnapshot
from tui.core.records import RequestRecord
from tui.core.waits import wait_set

RING_EVENTS = 4096


def encode_line(event_id: int, kind: str, data: Any) -> bytes:
    """One NDJSON line of the feed stream."""
    return orjson.dumps({"id": event_id, "type": kind, "data": data}) + b"\n"


def rows_line(
    event_id: int, rows: Sequence[tuple[int, bytes]], *, initial: bool, replaced: bool = False
) -> bytes:
    """A `rows` line from records already encoded one by one (`replaced`: final rows of in-flight ones)."""
    body = b",".join(encoded for _, encoded in rows)
    flag = b"true" if initial else b"false"
    extra = b',"replaced":true' if replaced else b""
    return b'{"id":%d,"type":"rows","data":{"records":[%s],"initial":%s%s}}\n' % (event_id, body, flag, extra)


def encode_records(records: Sequence[RequestRecord]) -> tuple[tuple[int, bytes], ...]:
    """Each record's id with its JSON (encoded once, however many clients read it)."""
    return tuple((r.id, orjson.dumps(record_to_json(r))) for r in records)


@dataclass(frozen=True)
class FeedEvent:
    """One event of this serve run; a `rows` event keeps its records apart to filter them per client."""

    id: int
    kind: str
    line: bytes = b""
    rows: tuple[tuple[int, bytes], ...] = ()
    replaced: bool = False  # final rows of in-flight ones: a client holding their ids needs them too

    def line_after(self, rows_after: int) -> bytes | None:
        """The NDJSON line for a client holding every row up to `rows_after` (None: nothing new for it)."""
        if self.kind != "rows":
            return self.line
        if self.replaced:
            return rows_line(self.id, self.rows, initial=False, replaced=True)
        fresh = [row for row in self.rows if row[0] > rows_after]
        return rows_line(self.id, fresh, initial=False) if fresh else None


@dataclass(frozen=True)
class HubSnapshot:
    """What a client that cannot resume gets before the live events: taken at one instant."""

    last_id: int
    log_lines: tuple[str, ...]
    log_backlog_read: bool
    server: ServerSnapshot | None
    gpu: GpuSnapshot | None
    statuses: tuple[SourceStatus, ...]


class EventHub(DashboardFeed):
    """A DashboardFeed (so speeds still reach the journal) that also numbers every raw observation."""

    def __init__(self, driver: FeedDriver, *, log_lines: int = 2000, ring_events: int = RING_EVENTS) -> None:
        super().__init__(driver, log_lines=log_lines)
        self.epoch = secrets.token_hex(8)
        self.last_id = 0
        self._ring: deque[FeedEvent] = deque(maxlen=ring_events)
        self._log_lines: deque[str] = deque(maxlen=max(50, log_lines))
        self._log_backlog_read = False
        self._statuses: dict[str, SourceStatus] = {}
        self._new = asyncio.Event()
        self.ui_ready.set()  # no UI to wait for: every source starts at once

    # --- recording ---------------------------------------------------------------------------------

    def _append(
        self, kind: str, data: Any = None, rows: tuple[tuple[int, bytes], ...] = (), replaced: bool = False
    ) -> None:
        self.last_id += 1
        line = b"" if kind == "rows" else encode_line(self.last_id, kind, data if data is not None else {})
        self._ring.append(FeedEvent(self.last_id, kind, line, rows, replaced))
        self._new.set()
        self._new = asyncio.Event()

    def add_records(self, records: Sequence[RequestRecord], *, initial: bool = False) -> None:
        """Journal rows: the live ones become a `rows` event (clients get the backlog from the journal)."""
        super().add_records(records, initial=initial)
        if records and not initial:  # in-flight rows too: a remote dashboard shows their progress
            self._append("rows", rows=encode_records(records))

    def finish_records(self, records: Sequence[RequestRecord]) -> None:
        """Final rows that replaced in-flight ones: a `replaced` rows event, which no client filters out."""
        super().finish_records(records)
        done = [r for r in records if not r.in_flight]
        if done:
            self._append("rows", rows=encode_records(done), replaced=True)

    def add_log_lines(self, lines: Sequence[str]) -> None:
        """Raw log lines, as read."""
        super().add_log_lines(lines)
        texts = [line.rstrip("\r\n") for line in lines]
        self._log_lines.extend(texts)
        self._append("log", {"lines": texts})

    def log_backlog_read(self) -> None:
        """The log's backlog is all in."""
        super().log_backlog_read()
        if not self._log_backlog_read:
            self._log_backlog_read = True
            self._append("log_backlog_read")

    def set_server(self, snapshot: ServerSnapshot) -> None:
        """A server poll."""
        super().set_server(snapshot)
        self._append("server", server_to_json(snapshot))

    def set_gpu(self, snapshot: GpuSnapshot) -> None:
        """A GPU sample."""
        super().set_gpu(snapshot)
        self._append("gpu", gpu_to_json(snapshot))

    def set_status(self, status: SourceStatus) -> None:
        """A source's state."""
        super().set_status(status)
        self._statuses[status.source] = status
        self._append("status", status_to_json(status))

    # --- reading -----------------------------------------------------------------------------------

    @property
    def first_id(self) -> int:
        """The oldest event still in the ring (last_id + 1 when it is empty)."""
        return self._ring[0].id if self._ring else self.last_id + 1

    def can_resume(self, epoch: str | None, after: int | None) -> bool:
        """Whether every event after `after` of run `epoch` is still here."""
        return epoch == self.epoch and after is not None and self.first_id - 1 <= after <= self.last_id

    def events_after(self, after: int) -> list[FeedEvent] | None:
        """Events with id > after, or None when some of them already left the ring."""
        if after < self.first_id - 1:
            return None
        if after >= self.last_id:
            return []
        start = len(self._ring) - (self.last_id - after)
        return list(itertools.islice(self._ring, start, None))

    def snapshot(self) -> HubSnapshot:
        """The log backlog and the latest states, consistent with `last_id`."""
        return HubSnapshot(
            self.last_id,
            tuple(self._log_lines),
            self._log_backlog_read,
            self.server,
            self.gpu,
            tuple(self._statuses.values()),
        )

    async def wait_new(self, timeout: float) -> None:
        """Until the next event (or timeout)."""
        await wait_set(self._new, timeout)


def status_to_json(status: SourceStatus) -> dict[str, str]:
    """The `status` event's data."""
    return {"source": status.source, "health": status.health, "message": status.message}
