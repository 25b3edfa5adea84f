"""Live sources for the feed: the journal (written by the proxy process or another), log, server, GPU."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.config import Settings
from tui.core.feed.updates import FeedInfo, SourceHealth, SourceName, SourceStatus
from tui.core.journal.reader import JournalReader
from tui.core.poll.snapshots import ServerSnapshot
from tui.core.records import RequestRecord
from tui.core.redact import redact_url
from tui.core.waits import wait_set

if TYPE_CHECKING:
    from tui.core.control.client import ControlClient
    from tui.core.feed.acting import ServerControl
    from tui.core.feed.embedded import EmbeddedProxy
    from tui.core.feed.feed import DashboardFeed

log = logging.getLogger(__name__)

BACKLOG_ROWS = 150
# The log, server and GPU sources start once the UI has drawn the journal rows (feed.ui_ready), so the
# first frame is not held up by their imports and HTTP client setup; without a UI, after this long.
SECONDARY_START_MAX_WAIT_S = 1.0
JOURNAL_POLL_S = 0.1
# The dashboard's own proxy announces each row it journals; the journal is then only checked this often.
ANNOUNCED_JOURNAL_POLL_S = 1.0
JOURNAL_BATCH = 1000
LOG_FALLBACK_POLL_S = 2.0
# With no request and no slot activity for QUIET_AFTER_S, the server is polled every QUIET_POLL_S
# (or poll_interval when that is longer); the next record or slot log line brings the fast rate back.
QUIET_AFTER_S = 30.0
QUIET_POLL_S = 6.0
NO_GPU_INTERVAL_S = 10.0
CONTROL_TIMEOUT_S = 5.0
NO_LOG_FILE = (
    "no log file configured: set [server] log_file in config.toml, or start llama-server with "
    "--log-file PATH --log-colors off and set [server] log_file = PATH"
)


async def load_off_loop(*modules: str) -> None:
    """Import modules in a worker thread, so the UI keeps answering keys meanwhile (~0.1 s each)."""
    for name in modules:
        await asyncio.to_thread(importlib.import_module, name)


def _all_new_rows(reader: JournalReader) -> list[RequestRecord]:
    """Every row after the last one read (in batches: a burst can hold more than one batch)."""
    rows: list[RequestRecord] = []
    while True:
        batch = reader.since(reader.last_id, limit=JOURNAL_BATCH)
        rows += batch
        if len(batch) < JOURNAL_BATCH:
            return rows


def _new_and_finished(
    reader: JournalReader, in_flight: list[int]
) -> tuple[list[RequestRecord], list[RequestRecord]]:
    """New rows, and rows shown as in flight that their final rows have replaced since."""
    finished = [r for r in reader.rows(in_flight) if not r.in_flight] if in_flight else []
    return _all_new_rows(reader), finished


class LiveDriver:
    """Runs every live source as its own task; one failing source reports itself and the rest go on."""

    def __init__(self, settings: Settings, *, attach: bool = False, journal_path: Path | None = None) -> None:
        self.settings = settings
        self.attach = attach
        self.journal_path = journal_path or settings.journal_path()
        self.info = FeedInfo(
            mode="attach" if attach else "live",
            proxy_address="" if attach else settings.proxy.listen,
            journal_path=str(self.journal_path),
            log_path=settings.server.log_file,
            server_url=settings.server.url,
        )
        self._detail_reader = JournalReader(self.journal_path)
        self._speed_writer: Executor | None = None
        self._detail_lock = threading.Lock()
        self.proxy_url = ""
        self._control: ControlClient | None = None
        self._server_control: ServerControl | None = None
        self._poke_server: Callable[[], None] = lambda: None
        self._proxy: EmbeddedProxy | None = None  # the dashboard's own proxy, which gets our server polls
        self._autostart: asyncio.Task[None] | None = None
        self._journal_wake = asyncio.Event()
        self._backlog: Future[tuple[list[RequestRecord], int]] | None = None
        self._backlog_delivered_to: int | None = None  # last id of a backlog handed out by take_backlog

    def prefetch_backlog(self) -> None:
        """Start reading the journal's newest rows in a thread now, so they are ready for the first frame.

        Meant to run while the UI is still importing: a read racing the first render for the GIL took
        0.1-0.4 s instead of ~15 ms (sqlite gives up and re-takes the GIL for every row).
        """
        future: Future[tuple[list[RequestRecord], int]] = Future()

        def read() -> None:
            reader = JournalReader(self.journal_path)
            try:
                future.set_result((reader.latest(BACKLOG_ROWS), reader.last_id))
            except Exception as exc:  # reported by the journal source when it takes the rows
                future.set_exception(exc)
            finally:
                reader.close()

        threading.Thread(target=read, name="journal-backlog", daemon=True).start()
        self._backlog = future

    def control_client(self) -> ControlClient:
        """A client of the embedded proxy once it listens, else of [proxy] listen (pooled, one per URL)."""
        from tui.core.control.client import ControlClient, proxy_base_url

        wanted = self.proxy_url or proxy_base_url(self.settings)
        current = self._control
        if current is not None and current.base_url == wanted.rstrip("/"):
            return current
        if current is not None:
            current.close()
        self._control = ControlClient(wanted, timeout=CONTROL_TIMEOUT_S)
        return self._control

    def server_control(self) -> ServerControl:
        """The configured llama-server of this machine."""
        from tui.core.feed.acting import LocalServerControl

        if self._server_control is None:
            self._server_control = LocalServerControl(self.settings)
        return self._server_control

    # --- detail loads (worker threads) -----------------------------------------------------------

    def store_speeds(self, record: RequestRecord) -> None:
        """Persist what the log adds to a row (speeds; the server's count and progress of a request cut
        off, in its usage and error; why the server lost its cache) into its journal row (worker thread)."""
        from tui.core.anatomy.cache_break_server import explained_by_log
        from tui.core.journal.writer import store_usage

        if self._speed_writer is None:
            from concurrent.futures import ThreadPoolExecutor

            self._speed_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctxbudget-speeds")
        explained = record.cache_break if explained_by_log(record.cache_break) else None
        self._speed_writer.submit(
            store_usage, self.journal_path, record.id, record.usage, record.error, explained
        )

    def load_record(self, record_id: int) -> RequestRecord | None:
        """The journal row with its parts."""
        with self._detail_lock:
            return self._detail_reader.get(record_id)

    def load_body(self, record_id: int) -> bytes | None:
        """The stored request body, when bodies are kept."""
        with self._detail_lock:
            return self._detail_reader.body(record_id)

    # --- running ---------------------------------------------------------------------------------

    async def run(self, feed: DashboardFeed) -> None:
        """All sources until cancelled."""
        tasks = [asyncio.create_task(self._guard("journal", self._follow_journal, feed), name="feed-journal")]
        if not self.attach:
            tasks.append(asyncio.create_task(self._guard("proxy", self._run_proxy, feed), name="feed-proxy"))
        try:
            await wait_set(feed.ui_ready, SECONDARY_START_MAX_WAIT_S)
            secondary: list[tuple[SourceName, Callable[[DashboardFeed], Awaitable[None]]]] = [
                ("log", self._follow_log),
                ("server", self._poll_server),
                ("gpu", self._sample_gpu),
            ]
            tasks += [
                asyncio.create_task(self._guard(name, run, feed), name=f"feed-{name}")
                for name, run in secondary
            ]
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                if not task.cancelling():  # a second cancel would cut short its clean-up (the proxy's stop)
                    task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await asyncio.to_thread(self._detail_reader.close)
            if self._speed_writer is not None:  # let the last speeds reach the journal
                await asyncio.to_thread(self._speed_writer.shutdown)

    async def _guard(
        self, name: SourceName, run: Callable[[DashboardFeed], Awaitable[None]], feed: DashboardFeed
    ) -> None:
        try:
            await run(feed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a source failure is shown, never fatal to the dashboard
            log.exception("feed source %s failed", name)
            feed.set_status(SourceStatus(name, "error", f"{name} stopped: {exc}"))

    def take_backlog(self) -> list[RequestRecord] | None:
        """The prefetched newest rows if the read has already finished (once), else None."""
        future = self._backlog
        if future is None or not future.done() or future.exception() is not None:
            return None
        rows, last_id = future.result()
        self._backlog = None
        self._backlog_delivered_to = last_id
        return rows

    async def _initial_rows(self, feed: DashboardFeed, reader: JournalReader) -> None:
        if self._backlog_delivered_to is not None:
            reader.last_id = max(reader.last_id, self._backlog_delivered_to)
            return
        if self._backlog is not None:
            rows, last_id = await asyncio.wrap_future(self._backlog)
            self._backlog = None
            reader.last_id = max(reader.last_id, last_id)
        else:
            rows = await asyncio.to_thread(reader.latest, BACKLOG_ROWS)
        feed.add_records(rows, initial=True)

    async def _run_proxy(self, feed: DashboardFeed) -> None:
        """The embedded proxy in its own process: its rows reach the dashboard through the journal."""
        from tui.core.feed.embedded import EmbeddedProxy, EmbeddedProxyError

        def on_problem(text: str | None) -> None:  # journal trouble: a toast, and the header shows it
            health: SourceHealth = "error" if text else "ok"
            feed.set_status(SourceStatus("journal", health, text or f"journal {self.journal_path} ok"))

        proxy = EmbeddedProxy(
            self.settings, self.journal_path, on_problem=on_problem, on_row=self._journal_wake.set
        )
        listen = self.settings.proxy.listen
        try:
            try:
                self.proxy_url = await proxy.start()
                self._proxy = proxy
            except EmbeddedProxyError as exc:
                feed.set_status(
                    SourceStatus(
                        "proxy",
                        "error",
                        f"{exc}; is another ctxbudget proxy running on {listen}? "
                        "use `ctxbudget --attach` to watch it, or --listen HOST:PORT",
                    )
                )
                return
            upstream = redact_url(self.settings.proxy.upstream)
            feed.set_status(SourceStatus("proxy", "ok", f"proxy on {self.proxy_url} → {upstream}"))
            code = await proxy.wait()
            self.proxy_url = ""
            feed.set_status(
                SourceStatus("proxy", "error", f"the proxy stopped: {proxy.last_error(code)}")
            )
        finally:
            self._proxy = None
            await proxy.stop()

    async def _follow_journal(self, feed: DashboardFeed) -> None:
        """New journal rows every JOURNAL_POLL_S (PRAGMA data_version says when): the one route rows take."""
        reader = JournalReader(self.journal_path)
        waiting = self.attach and not self.journal_path.exists()
        if waiting:
            feed.set_status(
                SourceStatus(
                    "journal",
                    "missing",
                    f"no journal at {self.journal_path} yet: start `ctxbudget proxy` or pass --journal PATH",
                )
            )
        await self._initial_rows(feed, reader)
        try:
            while True:
                # The change check (one PRAGMA, ~4 µs) runs here: a thread hop ten times a second cost
                # more idle CPU than the check itself. Rows are read in a thread only when there are new ones.
                rows: list[RequestRecord] = []
                finished: list[RequestRecord] = []
                if reader.changed():
                    rows, finished = await asyncio.to_thread(_new_and_finished, reader, feed.in_flight_ids)
                if finished:
                    feed.finish_records(finished)
                    self._poke_server()  # the slot as the request left it, before another task takes it
                if rows:
                    if waiting:
                        waiting = False
                        feed.set_status(SourceStatus("journal", "ok", f"following {self.journal_path}"))
                    feed.add_records(rows)
                    self._poke_server()  # slot fill right after a request, not up to poll_interval later
                interval = JOURNAL_POLL_S if self.attach else ANNOUNCED_JOURNAL_POLL_S
                await wait_set(self._journal_wake, interval)
                self._journal_wake.clear()
        finally:
            await asyncio.to_thread(reader.close)

    async def _follow_log(self, feed: DashboardFeed) -> None:
        await load_off_loop("tui.core.logs.tail", "tui.core.logs.monitor")
        from tui.core.logs.tail import LogTailer

        path_text = self.settings.server.log_file
        if not path_text:
            feed.set_status(SourceStatus("log", "missing", NO_LOG_FILE))
            return
        path = Path(path_text).expanduser()
        if not path.exists():
            feed.set_status(
                SourceStatus(
                    "log", "waiting", f"waiting for {path} to appear (llama-server --log-file {path})"
                )
            )
        # watchfiles wakes the tailer on writes; the poll is only a fallback, so it can be slow.
        tailer = LogTailer(
            path, backlog_lines=self.settings.dashboard.log_lines, poll_interval=LOG_FALLBACK_POLL_S
        )
        first = True
        backlog = True
        async for batch in tailer.batches():
            if first:
                first = False
                feed.set_status(SourceStatus("log", "ok", f"following {path}"))
            feed.add_log_lines(batch)
            if backlog and not tailer.pending_lines:
                backlog = False
                feed.log_backlog_read()

    async def _poll_server(self, feed: DashboardFeed) -> None:
        await load_off_loop("tui.core.poll.server_poller")
        from tui.core.poll.server_poller import ServerPoller

        server = self.settings.server
        busy_interval = server.poll_interval
        quiet_interval = max(busy_interval, QUIET_POLL_S)
        poller = ServerPoller(server.url, server.api_key, interval=busy_interval)
        await asyncio.to_thread(poller.open_client)  # loads TLS certificates (~50 ms) off the loop
        self._poke_server = poller.poke

        def wake() -> None:
            if poller.interval != busy_interval:
                poller.interval = busy_interval
                poller.poke()

        autostart = self.settings.server.autostart

        def on_snapshot(snapshot: ServerSnapshot) -> None:
            nonlocal autostart
            feed.set_server(snapshot)
            if self._proxy is not None:
                self._proxy.send_server(snapshot)
            if autostart and snapshot.state == "down":
                autostart = False  # once, on the first "down" poll: a server stopped later stays stopped
                self._autostart = asyncio.create_task(self._start_server(feed, poller.poke), name="autostart")
            quiet = snapshot.busy_slots == 0 and time.monotonic() - feed.last_activity > QUIET_AFTER_S
            poller.interval = quiet_interval if quiet else busy_interval

        feed.on_activity = wake
        try:
            await poller.run(on_snapshot)
        finally:
            poller.stop()
            await poller.aclose()

    async def _start_server(self, feed: DashboardFeed, poke: Callable[[], None]) -> None:
        """[server] autostart: launch the configured llama-server (with the doctor's pre-flight checks)."""
        from tui.core.actions.server_control import ServerController
        from tui.core.actions.server_errors import ServerControlError

        feed.set_status(SourceStatus("server", "waiting", "autostart: starting llama-server…"))
        try:
            state = await asyncio.to_thread(ServerController(self.settings).ensure_started)
        except ServerControlError as exc:
            feed.set_status(SourceStatus("server", "error", f"autostart: {exc}"))
            return
        if state is not None and state.phase != "up":
            feed.set_status(SourceStatus("server", "error", f"autostart: {state.message}"))
        else:
            feed.set_status(SourceStatus("server", "ok", "autostart: llama-server started"))
        poke()

    async def _sample_gpu(self, feed: DashboardFeed) -> None:
        await load_off_loop("tui.core.poll.gpu", "tui.core.poll.buffers")
        from tui.core.poll.gpu import GpuSampler

        gpu = self.settings.gpu
        sampler = GpuSampler(server_url=self.settings.server.url, enabled=gpu.enabled)
        try:
            while True:
                snapshot = await asyncio.to_thread(sampler.sample, feed.buffers())
                feed.set_gpu(snapshot)
                # Without a GPU only the server's RSS moves: sample it less often.
                await asyncio.sleep(
                    gpu.interval if snapshot.available else max(gpu.interval, NO_GPU_INTERVAL_S)
                )
        finally:
            await asyncio.to_thread(sampler.close)
