"""The feed on the shipped recording: replay, batching, bounds, timings from the log, view models, codec."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from tui.core.feed.codec import (
    gpu_from_json,
    gpu_to_json,
    record_from_json,
    record_to_json,
    server_from_json,
    server_to_json,
)
from tui.core.feed.demo import DemoDriver
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.recording import DEMO_RECORDING, RecordingWriter, load_recording
from tui.core.feed.updates import FeedUpdate, LogUpdate, RecordsUpdate, SlotsUpdate, SourceStatus
from tui.core.feed.views import RequestHistory, SessionCalls, budget_of, mcp_calls, mcp_rows
from tui.core.logs.state import ServerFacts
from tui.core.poll.snapshots import GpuSnapshot, ServerSnapshot

RECORDING = load_recording(DEMO_RECORDING)
RECORDS = [record_from_json(e.data) for e in RECORDING.entries if e.type == "record"]
LOG_LINES = [str(e.data) for e in RECORDING.entries if e.type == "log"]


def replay(**kwargs: float | None) -> tuple[DashboardFeed, list[FeedUpdate]]:
    feed = DashboardFeed(DemoDriver(RECORDING, speed=0, clock_base=1_000.0, **kwargs))  # type: ignore[arg-type]
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    asyncio.run(feed.run())
    return feed, updates


def test_recording_is_real_and_complete() -> None:
    meta = RECORDING.meta
    assert meta["made_with"] == "scripts/record_demo.py"
    assert "--log-file" in meta["server_args"]
    kinds = {e.type for e in RECORDING.entries}
    assert kinds == {"record", "log", "server", "gpu"}
    text = "\n".join(LOG_LINES)
    for needle in (
        "created context checkpoint",
        "restored context checkpoint",
        "erased",
        "prompt processing",
    ):
        assert needle in text
    assert any(r.kind == "title" for r in RECORDS) and any(r.anatomy and r.anatomy.parts for r in RECORDS)


def test_instant_replay_emits_every_kind_in_order() -> None:
    feed, updates = replay()
    records = [r for u in updates if isinstance(u, RecordsUpdate) and not u.replaced for r in u.records]
    assert [r.id for r in records] == [r.id for r in RECORDS]
    assert all(r.ts >= 1_000.0 for r in records)
    lines = [line for u in updates if isinstance(u, LogUpdate) for line in u.lines]
    assert [line.text for line in lines] == LOG_LINES
    assert any(line.level == "W" for line in lines) or any(line.level == "I" for line in lines)
    assert any(isinstance(u, ServerSnapshot) and u.state == "up" for u in updates)
    assert any(isinstance(u, GpuSnapshot) for u in updates)
    assert any(isinstance(u, ServerFacts) and u.n_ctx_train for u in updates)
    slots = [u for u in updates if isinstance(u, SlotsUpdate)]
    assert slots and any(s.checkpoints for s in slots[-1].slots)
    assert isinstance(updates[0], SourceStatus)


def test_speeds_come_from_the_log_when_the_response_has_none() -> None:
    assert all(r.usage.prompt_per_second is None for r in RECORDS), "Anthropic responses carry no timings"
    _, updates = replay()
    shown = {r.id: r for u in updates if isinstance(u, RecordsUpdate) for r in u.records}
    timed = [r for r in shown.values() if r.usage.prompt_per_second is not None]
    assert len(timed) == len(RECORDS)
    assert all(r.usage.gen_per_second is not None and r.usage.prompt_ms for r in timed)


def test_until_stops_mid_prompt_with_progress() -> None:
    progress_t = [
        e.t for e in RECORDING.entries if e.type == "log" and "prompt processing, n_tokens" in e.data
    ]
    _, updates = replay(until=progress_t[2])
    last = [u for u in updates if isinstance(u, SlotsUpdate)][-1]
    busy = [s for s in last.slots if s.phase == "prompt"]
    assert busy and busy[0].progress is not None and 0 < busy[0].progress < 1


def test_log_buffer_is_bounded_and_batched() -> None:
    async def run() -> list[FeedUpdate]:
        feed = DashboardFeed(DemoDriver(RECORDING, speed=0), log_lines=60, flush_interval=0.05)
        updates: list[FeedUpdate] = []
        feed.subscribe(updates.append)
        flusher = asyncio.create_task(feed._flush_loop())
        for _ in range(3):
            feed.add_log_lines(LOG_LINES[:100])
        await asyncio.sleep(0.2)
        flusher.cancel()
        return updates

    updates = asyncio.run(run())
    batches = [u for u in updates if isinstance(u, LogUpdate)]
    assert len(batches) == 1  # three bursts coalesced into one update
    assert len(batches[0].lines) == 60 and batches[0].dropped == 240


def test_speed_paces_the_replay() -> None:
    short = dataclasses.replace(RECORDING, entries=tuple(e for e in RECORDING.entries if e.t <= 2.0))

    async def run() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await DashboardFeed(DemoDriver(short, speed=4.0)).run()
        return loop.time() - start

    elapsed = asyncio.run(run())
    assert short.duration / 4.0 * 0.9 <= elapsed < short.duration / 4.0 + 1.0


def test_codec_round_trips(tmp_path: Path) -> None:
    record = next(r for r in RECORDS if r.anatomy and r.anatomy.parts)
    assert record_from_json(record_to_json(record)) == record
    server = next(server_from_json(e.data) for e in RECORDING.entries if e.type == "server")
    assert server_from_json(server_to_json(server)) == server
    gpu = next(gpu_from_json(e.data) for e in RECORDING.entries if e.type == "gpu")
    assert gpu_from_json(gpu_to_json(gpu)) == gpu
    path = tmp_path / "r.jsonl"
    writer = RecordingWriter(path, {"made_with": "test"})
    writer.add(0.5, "record", record_to_json(record))
    writer.add(0.25, "log", "0.00.001.000 I srv  update_slots: all slots are idle")
    writer.close()
    loaded = load_recording(path)
    assert loaded.meta == {"made_with": "test"} and [e.type for e in loaded.entries] == ["log", "record"]


def test_budget_segments_cover_the_prompt_and_the_free_window() -> None:
    record = RECORDS[-1]
    assert record.anatomy is not None
    budget = budget_of(record, 65536)
    assert budget is not None
    by_key = {s.key: s.tokens for s in budget.segments}
    assert sum(v for k, v in by_key.items() if k != "free") == record.anatomy.total_tokens
    assert by_key["free"] == 65536 - (record.prompt_tokens or 0)
    mcp_servers = {t.server for t in record.anatomy.tools if t.server}
    assert {k for k in by_key if k.startswith("mcp:")} == {f"mcp:{s}" for s in mcp_servers}
    assert budget.level == "ok"
    assert budget_of(record, 1).level == "danger"  # type: ignore[union-attr]


@pytest.mark.parametrize("configured", [(), ("github",)], ids=["seen-only", "configured-extra"])
def test_mcp_rows_and_session_calls(configured: tuple[str, ...]) -> None:
    with_calls = next(r for r in RECORDS if mcp_calls(r))
    calls = SessionCalls()
    calls.add(RECORDS)
    latest = RECORDS[-1]
    rows = {row.name: row for row in mcp_rows(latest, configured, calls.of(latest.session_id))}
    for server, count in mcp_calls(with_calls).items():
        assert rows[server].calls >= count
    for name in configured:
        assert rows[name].state == "off" and rows[name].tools == 0


def test_history_series_replace_and_bound() -> None:
    history = RequestHistory(size=3)
    history.add(RECORDS)
    series = history.series()
    assert len(series.prompt_tokens) == 3
    assert series.prompt_tokens[-1] == float(RECORDS[-1].prompt_tokens or 0)
    history.add(
        [
            dataclasses.replace(
                RECORDS[-1], usage=dataclasses.replace(RECORDS[-1].usage, prompt_per_second=5.0)
            )
        ]
    )
    assert history.series().prompt_tps == (5.0,)


def test_loop_replays_again_with_new_ids_and_speeds() -> None:
    short = dataclasses.replace(RECORDING, entries=tuple(e for e in RECORDING.entries if e.t <= 6.5))
    assert any(e.type == "record" for e in short.entries)

    async def run() -> list[FeedUpdate]:
        driver = DemoDriver(short, speed=50.0, loop=True, loop_pause=0.05)
        feed = DashboardFeed(driver)
        updates: list[FeedUpdate] = []
        feed.subscribe(updates.append)
        task = asyncio.create_task(feed.run())
        while driver._round < 2:
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return updates

    updates = asyncio.run(run())
    shown = [r for u in updates if isinstance(u, RecordsUpdate) and not u.replaced for r in u.records]
    per_round = sum(1 for e in short.entries if e.type == "record")
    ids = [r.id for r in shown]
    assert len(ids) >= 2 * per_round and len(set(ids)) == len(ids)
    # The second round's requests get their speeds from the (replayed) log too.
    timed = {
        r.id for u in updates if isinstance(u, RecordsUpdate) for r in u.records if r.usage.prompt_per_second
    }
    assert set(ids[per_round : 2 * per_round]) <= timed
