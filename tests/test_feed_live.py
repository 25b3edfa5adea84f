"""The live feed against a real llama-server through the real proxy: records, log, polls, attach mode."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.eventually import eventually
from support.llama import RunningServer, StartServer
from support.processes import listening_pid

from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, ServerSettings, Settings
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import NO_LOG_FILE, LiveDriver
from tui.core.feed.updates import FeedInfo, FeedUpdate, LogUpdate, RecordsUpdate, SlotsUpdate, SourceStatus
from tui.core.journal.reader import JournalReader
from tui.core.logs.parse import LogParser
from tui.core.logs.timeline import Timeline
from tui.core.poll.snapshots import GpuSnapshot, ServerSnapshot
from tui.core.prom import METRICS_PATH
from tui.core.proxy.service import ProxyService
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]

BODY: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 12,
    "stream": True,
    "system": [{"type": "text", "text": "You are a careful coding agent. " * 30}],
    "tools": [
        {"name": "Read", "description": "Read a file. " * 20, "input_schema": {"type": "object"}},
        {"name": "mcp__filesystem__list_directory", "description": "List a directory.",
         "input_schema": {"type": "object"}},
    ],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "list the files please"}]}],
}  # fmt: skip


def live_settings(server: RunningServer, tmp_path: Path, port: int, log_file: str | None = None) -> Settings:
    """Settings pointing the dashboard at the test server."""
    return Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{port}", upstream=server.url),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3"), store_bodies=True),
        anatomy=AnatomySettings(mcp_servers=["filesystem"]),
        server=ServerSettings(
            url=server.url, log_file=str(server.log_path) if log_file is None else log_file, poll_interval=0.5
        ),
    )


async def wait_for(
    updates: list[FeedUpdate], check: Callable[[FeedUpdate], bool], timeout: float = 30.0
) -> Any:
    """The first update passing `check` (the feed runs meanwhile)."""
    return await eventually(
        lambda: next((u for u in updates if check(u)), None),
        timeout=timeout,
        what="a matching feed update",
        seen=lambda: sorted({type(u).__name__ for u in updates}),
    )


async def post(url: str, body: dict[str, Any]) -> int:
    async with httpx.AsyncClient(base_url=url, timeout=60, trust_env=False) as client:
        async with client.stream(
            "POST", "/v1/messages?beta=true", json=body, headers={"x-api-key": "k"}
        ) as r:
            async for _ in r.aiter_bytes():
                pass
            return r.status_code


async def test_live_feed_delivers_records_log_and_polls(
    llama_server: StartServer, tmp_path: Path, free_port: int
) -> None:
    server = llama_server()
    driver = LiveDriver(live_settings(server, tmp_path, free_port))
    feed = DashboardFeed(driver)
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    try:
        await wait_for(
            updates, lambda u: isinstance(u, SourceStatus) and u.source == "proxy" and u.health == "ok"
        )
        assert await post(f"http://127.0.0.1:{free_port}", BODY) == 200
        update = await wait_for(
            updates, lambda u: isinstance(u, RecordsUpdate) and any(not r.in_flight for r in u.records)
        )
        record = next(r for r in update.records if not r.in_flight)
        assert record.status == 200 and record.anatomy is not None
        assert record.usage.prompt_tokens and record.usage.prompt_tokens > 0
        # The proxy runs in its own process; the row came through the journal like in --attach mode.
        proxy_port_owner = await asyncio.to_thread(listening_pid, free_port)
        assert proxy_port_owner is not None and proxy_port_owner != os.getpid()
        # Anthropic responses carry no speeds: the feed fills them from the log's timings lines.
        timed = await wait_for(
            updates,
            lambda u: (
                isinstance(u, RecordsUpdate)
                and any(r.id == record.id and r.usage.prompt_per_second for r in u.records)
            ),
        )
        assert timed.records[0].usage.gen_per_second is not None
        # ... and writes them to the journal, so a dashboard started later shows them too.
        stored = None
        for _ in range(100):
            stored = await asyncio.to_thread(driver.load_record, record.id)
            if stored is not None and stored.usage.prompt_per_second is not None:
                break
            await asyncio.sleep(0.05)
        assert stored is not None and stored.usage == timed.records[0].usage
        snap = await wait_for(updates, lambda u: isinstance(u, ServerSnapshot) and u.state == "up")
        assert snap.n_ctx_slot == 8192
        # The proxy child does not poll the server: the dashboard's polls reach its metrics.
        metrics = await _child_metrics(free_port, "ctxbudget_server_slot_ctx_tokens 8192.0")
        assert 'ctxbudget_server_state{state="up"} 1.0' in metrics
        await wait_for(updates, lambda u: isinstance(u, GpuSnapshot))
        log = await wait_for(
            updates, lambda u: isinstance(u, LogUpdate) and any("slot" in x.text for x in u.lines)
        )
        assert all(line.text for line in log.lines)
        await wait_for(updates, lambda u: isinstance(u, SlotsUpdate) and bool(u.slots))
        full = driver.load_record(record.id)
        assert full is not None and full.anatomy is not None and full.anatomy.parts
        assert driver.load_body(record.id) is not None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _child_metrics(port: int, needle: str, timeout: float = 10.0) -> str:
    """The proxy's metrics once they hold `needle` (fails loudly after `timeout`)."""
    text = ""
    async with httpx.AsyncClient(trust_env=False) as client:
        for _ in range(int(timeout / 0.1)):
            text = (await client.get(f"http://127.0.0.1:{port}{METRICS_PATH}")).text
            if needle in text:
                return text
            await asyncio.sleep(0.1)
    raise AssertionError(f"{needle!r} never appeared in the proxy's metrics:\n{text[-2000:]}")


async def test_attach_reads_the_journal_of_another_proxy(
    llama_server: StartServer, tmp_path: Path, free_port: int
) -> None:
    server = llama_server()
    settings = live_settings(server, tmp_path, free_port)
    proxy = ProxyService(settings, journal_path=settings.journal_path())
    await proxy.start()
    driver = LiveDriver(settings, attach=True, journal_path=settings.journal_path())
    assert driver.info.mode == "attach" and driver.info.proxy_address == ""
    feed = DashboardFeed(driver)
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    try:
        assert await post(proxy.url, BODY) == 200
        update = await wait_for(updates, lambda u: isinstance(u, RecordsUpdate) and bool(u.records))
        assert update.records[0].path.startswith("/v1/messages")
        assert not any(isinstance(u, SourceStatus) and u.source == "proxy" for u in updates)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await proxy.stop()


async def test_missing_log_and_busy_port_are_reported(
    llama_server: StartServer, tmp_path: Path, free_port: int
) -> None:
    server = llama_server()
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", free_port)
    driver = LiveDriver(live_settings(server, tmp_path, free_port, log_file=""))
    feed = DashboardFeed(driver)
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    try:
        log = await wait_for(updates, lambda u: isinstance(u, SourceStatus) and u.source == "log")
        assert log.health == "missing" and log.message == NO_LOG_FILE
        proxy = await wait_for(updates, lambda u: isinstance(u, SourceStatus) and u.source == "proxy")
        assert proxy.health == "error" and "--attach" in proxy.message and str(free_port) in proxy.message
        # The other sources go on.
        await wait_for(updates, lambda u: isinstance(u, ServerSnapshot) and u.state == "up")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        blocker.close()


class _NoDriver:
    """A driver with nothing to run: the test pushes observations into the feed itself."""

    info = FeedInfo(mode="attach")

    async def run(self, feed: DashboardFeed) -> None:
        await asyncio.Event().wait()

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


async def test_backlog_rows_get_speeds_from_the_log_backlog_only(
    llama_server: StartServer, tmp_path: Path, free_port: int
) -> None:
    server = llama_server()
    settings = live_settings(server, tmp_path, free_port)
    proxy = ProxyService(settings, journal_path=settings.journal_path())
    await proxy.start()
    try:
        assert await post(proxy.url, BODY) == 200
        reader = JournalReader(settings.journal_path())
        for _ in range(200):
            rows = reader.latest(5)
            if rows and rows[-1].usage.prompt_tokens:
                break
            await asyncio.sleep(0.05)
        reader.close()
    finally:
        await proxy.stop()
    row = rows[-1]
    assert row.usage.prompt_per_second is None  # an Anthropic stream: the journal has no speeds
    log_text = server.log_path.read_text()
    timeline = Timeline()
    timeline.feed_many(LogParser().parse_lines(log_text.splitlines()))
    task = next(t for t in timeline.requests() if t.done and t.prompt_tokens == row.usage.prompt_tokens)

    # The dashboard starting now: the journal backlog row takes its speeds from the log's backlog.
    driver = LiveDriver(settings, attach=True, journal_path=settings.journal_path())
    feed = DashboardFeed(driver)
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    running = asyncio.create_task(feed.run())
    try:
        initial = await wait_for(updates, lambda u: isinstance(u, RecordsUpdate) and u.initial)
        assert [r.id for r in initial.records] == [row.id]
        timed = await wait_for(updates, lambda u: isinstance(u, RecordsUpdate) and u.replaced)
        assert [r.id for r in timed.records] == [row.id]
        assert timed.records[0].usage.prompt_per_second == task.prompt_per_s
        assert timed.records[0].usage.gen_per_second == task.eval_per_s
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)

    # Log lines that come after the log's backlog are a newer task's: an old row must not take them.
    feed = DashboardFeed(_NoDriver())
    updates = []
    feed.subscribe(updates.append)
    feed.add_records([row], initial=True)
    feed.log_backlog_read()
    feed.add_log_lines(["main: server is listening on http://127.0.0.1:1234"])
    feed.flush()
    feed.add_log_lines(log_text.splitlines())
    feed.flush()
    assert not [u for u in updates if isinstance(u, RecordsUpdate) and u.replaced]


async def test_autostart_launches_the_configured_server_on_the_first_down_poll(
    llama_server_bin: Path, tiny_model: Path, tmp_path: Path, free_port: int
) -> None:
    from tui.core.actions.server_control import ServerController

    server = ServerSettings(
        url=f"http://127.0.0.1:{free_port}",
        model=str(tiny_model),
        ctx_size=2048,
        parallel=1,
        log_file=str(tmp_path / "server.log"),
        binary=str(llama_server_bin),
        extra_args=["-t", "1", "-n", "16"],
        poll_interval=0.5,
        autostart=True,
    )
    settings = Settings(server=server, journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")))
    driver = LiveDriver(settings, attach=True)
    feed = DashboardFeed(driver)
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    try:
        await wait_for(updates, lambda u: isinstance(u, ServerSnapshot) and u.state == "down")
        up = await wait_for(updates, lambda u: isinstance(u, ServerSnapshot) and u.state == "up", timeout=90)
        assert up.n_ctx_slot == 2048
        started = await wait_for(updates, lambda u: isinstance(u, SourceStatus) and u.source == "server")
        assert started.message.startswith("autostart: starting")
        await wait_for(
            updates, lambda u: isinstance(u, SourceStatus) and u.health == "ok" and "started" in u.message
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.to_thread(ServerController(settings).stop)
