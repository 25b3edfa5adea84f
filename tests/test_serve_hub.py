"""The serve hub's ring and the feed stream's resume rules (pure logic: a driver that pushes nothing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tui.core.feed.updates import FeedInfo
from tui.core.records import RequestRecord
from tui.core.serve.hub import EventHub
from tui.core.serve.stream import feed_lines


class QuietDriver:
    """Pushes nothing: the test feeds the hub itself."""

    info = FeedInfo(mode="live")

    async def run(self, feed: object) -> None:
        return None

    def load_body(self, record_id: int) -> bytes | None:
        return None

    def load_record(self, record_id: int) -> RequestRecord | None:
        return None

    def take_backlog(self) -> list[RequestRecord] | None:
        return None

    def store_speeds(self, record: RequestRecord) -> None:
        return None

    def control_client(self) -> None:
        return None

    def server_control(self) -> None:
        return None


def record(row_id: int) -> RequestRecord:
    return RequestRecord(id=row_id, ts=1.0, method="POST", path="/v1/messages", status=200)


async def test_ring_resume_bounds_and_row_filter(tmp_path: Path) -> None:
    hub = EventHub(QuietDriver(), ring_events=8)
    for i in range(20):
        hub.add_log_lines([f"line {i}"])
    assert (hub.first_id, hub.last_id) == (13, 20)
    assert hub.can_resume(hub.epoch, 12) and hub.can_resume(hub.epoch, 20)
    assert not hub.can_resume(hub.epoch, 11)  # event 12 already left the ring
    assert not hub.can_resume("another-run", 15) and not hub.can_resume(hub.epoch, 21)

    lines = feed_lines(hub, tmp_path / "none.sqlite3", hub.epoch, 12, 5)
    hello = json.loads(await anext(lines))
    expected = {"epoch": hub.epoch, "resumed": True, "first_id": 13, "last_id": 20}
    assert hello == {"id": 20, "type": "hello", "data": expected}
    got = [json.loads(await anext(lines)) for _ in range(8)]
    assert [e["id"] for e in got] == list(range(13, 21))
    assert [e["data"]["lines"] for e in got] == [[f"line {i}"] for i in range(12, 20)]

    hub.add_records([record(4), record(5), record(6), record(7)])  # the client has rows up to 5
    rows = json.loads(await anext(lines))
    assert rows["type"] == "rows" and [r["id"] for r in rows["data"]["records"]] == [6, 7]
    hub.add_records([record(6)])  # nothing new for this client: no event at all
    hub.add_log_lines(["after"])
    assert json.loads(await anext(lines))["data"]["lines"] == ["after"]

    for i in range(30):  # the client is too slow: its stream ends, it resumes from the journal
        hub.add_log_lines([f"burst {i}"])
    with pytest.raises(StopAsyncIteration):
        await anext(lines)
