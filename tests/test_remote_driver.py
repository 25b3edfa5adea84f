"""RemoteDriver against a real aiohttp server speaking the feed contract: resume, reconnect, 401."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp.test_utils import TestServer
from support.contract_serve import TOKEN, ContractServe
from support.eventually import eventually

from tui.core.feed.feed import DashboardFeed
from tui.core.feed.updates import FeedUpdate, LogUpdate, RecordsUpdate, SourceStatus
from tui.core.poll.snapshots import ServerSnapshot
from tui.core.remote.cursor import FeedCursor
from tui.core.remote.driver import RemoteDriver
from tui.core.serve.remote_source import RemoteSource

pytestmark = pytest.mark.timeout(60)


@dataclass
class Seen:
    """Every update the feed emitted."""

    updates: list[FeedUpdate] = field(default_factory=list)

    def row_ids(self) -> list[int]:
        return [
            r.id for u in self.updates if isinstance(u, RecordsUpdate) and not u.replaced for r in u.records
        ]

    def links(self) -> list[SourceStatus]:
        return [u for u in self.updates if isinstance(u, SourceStatus) and u.source == "link"]

    def log_texts(self) -> list[str]:
        return [line.text for u in self.updates if isinstance(u, LogUpdate) for line in u.lines]


@pytest.fixture
async def serve() -> AsyncIterator[tuple[ContractServe, TestServer]]:
    contract = ContractServe()
    server = TestServer(contract.app())
    await server.start_server()
    yield contract, server
    await contract.cut()
    await server.close()


async def run_feed(
    server: TestServer, token: str = TOKEN, read_timeout: float = 5.0
) -> tuple[DashboardFeed, Seen]:
    source = RemoteSource(str(server.make_url("")).rstrip("/"), token)
    driver = RemoteDriver(source, read_timeout=read_timeout, backoff=(0.2, 0.4))
    feed = DashboardFeed(driver, flush_interval=0.01)
    seen = Seen()
    feed.subscribe(seen.updates.append)
    return feed, seen


async def test_first_connection_gets_newest_rows_log_and_server_then_live_rows(
    serve: tuple[ContractServe, TestServer],
) -> None:
    import asyncio

    contract, server = serve
    contract.commit_rows(200)
    contract.log("srv  update_slots: id  0 | task 1 | new prompt, n_ctx_slot = 4096")
    contract.server("up")
    feed, seen = await run_feed(server)
    task = asyncio.create_task(feed.run())
    try:
        await eventually(lambda: len(seen.row_ids()) == 150, what="the newest 150 rows")
        initial = [u for u in seen.updates if isinstance(u, RecordsUpdate) and u.initial]
        assert len(initial) == 1 and [r.id for r in initial[0].records] == list(range(51, 201))
        contract.commit_rows(3)
        await eventually(lambda: seen.row_ids()[-3:] == [201, 202, 203], what="live rows")
        await eventually(lambda: any(isinstance(u, ServerSnapshot) and u.state == "up" for u in seen.updates))
        assert contract.requests[0] == {"rows_after": "-1"}
        assert seen.links()[0].health == "ok"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_cut_link_resumes_with_every_row_once(serve: tuple[ContractServe, TestServer]) -> None:
    import asyncio

    contract, server = serve
    contract.commit_rows(5)
    feed, seen = await run_feed(server)
    task = asyncio.create_task(feed.run())
    try:
        await eventually(lambda: len(seen.row_ids()) == 5)
        await eventually(lambda: len(contract.requests) == 1 and contract.events and feed.driver.cursor.epoch)  # type: ignore[attr-defined]
        for _ in range(3):
            await contract.cut()
            contract.commit_rows(4)  # committed while the link is down
            contract.log("line while down")
            await eventually(lambda: any(s.health == "waiting" for s in seen.links()), what="disconnected")
            await eventually(lambda: len(seen.row_ids()) == len(contract.journal), what="resumed rows")
        ids = seen.row_ids()
        assert ids == sorted(set(ids)) == [r.id for r in contract.journal]
        resumed = contract.requests[1:]
        assert all(q["epoch"] == contract.epoch for q in resumed), resumed
        waiting = [s.message for s in seen.links() if s.health == "waiting"]
        assert "disconnected from" in waiting[0] and "retrying in 1s" in waiting[0]
        await eventually(lambda: seen.log_texts().count("line while down") == 3, what="each log line once")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_silent_link_times_out_and_a_restarted_serve_sends_only_missing_rows(
    serve: tuple[ContractServe, TestServer],
) -> None:
    import asyncio

    contract, server = serve
    contract.commit_rows(10)
    feed, seen = await run_feed(server, read_timeout=1.0)
    task = asyncio.create_task(feed.run())
    try:
        await eventually(lambda: len(seen.row_ids()) == 10)
        contract.silent = True  # no pings: the read timeout must notice
        await eventually(
            lambda: any("no data for 1 s" in s.message for s in seen.links()), what="read timeout", timeout=10
        )
        await contract.cut()
        contract.restart()  # a new epoch: the ring is gone, the journal stays
        contract.silent = False
        contract.commit_rows(1200)
        await eventually(lambda: len(seen.row_ids()) == 1210, what="rows after the restart", timeout=20)
        assert seen.row_ids() == list(range(1, 1211))
        last = contract.requests[-1]
        assert last["rows_after"] == "10" or int(last["rows_after"]) >= 10
        later = [u for u in seen.updates if isinstance(u, RecordsUpdate) and not u.replaced][1:]
        assert not any(u.initial for u in later)
        # serve restarted: its log backlog comes again and replaces the pane instead of doubling it.
        assert sum(1 for u in seen.updates if isinstance(u, LogUpdate) and u.restart) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_wrong_token_is_one_clear_error_and_no_retry(serve: tuple[ContractServe, TestServer]) -> None:
    contract, server = serve
    contract.commit_rows(3)
    feed, seen = await run_feed(server, token="wrong")
    await feed.run()  # returns: a refused token is not retried
    (link,) = seen.links()
    assert link.health == "error"
    assert link.message == (
        f"token refused by {str(server.make_url('')).rstrip('/')}: set CTXBUDGET_TOKEN "
        "(or --token-file) to the value `ctxbudget serve --show-token` prints on the server"
    )
    assert seen.row_ids() == [] and contract.requests == []


def test_cursor_asks_again_for_a_replay_cut_short() -> None:
    cursor = FeedCursor()
    assert cursor.query() == {"rows_after": "-1"}
    assert not cursor.hello(7, {"epoch": "a", "resumed": False, "last_id": 7})
    assert cursor.new_rows([{"id": 1}, {"id": 2}]) == [{"id": 1}, {"id": 2}]
    cursor.event(7, "rows")
    # The link broke before the replay was shown complete: no epoch yet, so the server replays again.
    assert cursor.query() == {"rows_after": "2"}
    assert not cursor.hello(9, {"epoch": "a", "resumed": False, "last_id": 9})
    assert cursor.new_rows([{"id": 2}, {"id": 3}]) == [{"id": 3}]
    cursor.event(9, "ping")
    assert cursor.query() == {"rows_after": "3", "epoch": "a", "after": "9"}
    assert cursor.hello(9, {"epoch": "a", "resumed": True, "last_id": 12})
    cursor.event(10, "log")
    assert cursor.query() == {"rows_after": "3", "epoch": "a", "after": "10"}


async def test_a_host_that_is_down_at_start_is_retried_until_it_answers() -> None:
    import asyncio

    from support.llama import free_port

    port = free_port()
    source = RemoteSource(f"http://127.0.0.1:{port}", TOKEN)
    driver = RemoteDriver(source, None, read_timeout=5.0, backoff=(0.2,))  # /info did not answer at start
    feed = DashboardFeed(driver, flush_interval=0.01)
    seen = Seen()
    feed.subscribe(seen.updates.append)
    task = asyncio.create_task(feed.run())
    contract = ContractServe()
    contract.commit_rows(2)
    server = TestServer(contract.app(), port=port)
    try:
        await eventually(lambda: any("cannot connect" in s.message for s in seen.links()), what="retrying")
        await server.start_server()
        await eventually(lambda: seen.row_ids() == [1, 2], what="rows once the host answers")
        assert driver.info.remote_host == "gpu-box" and driver.info.server_url == "http://127.0.0.1:8080"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await contract.cut()
        await server.close()
