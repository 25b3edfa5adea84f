"""ProxyService: the proxy as a start/stop service, shared by `ctxbudget proxy` and the dashboard."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from tui.core.actions.compaction import CompactionStore
from tui.core.actions.compaction_service import CompactionService
from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.analysis.sinks import AnalyzerFactory, CaptureSink, Pipeline, SettingsAnalyzer
from tui.core.analysis.worker import ProcessPipeline
from tui.core.config import ConfigError, Settings
from tui.core.control.api import CONTROL_PREFIX, LISTEN_HOST, ControlApi, error, is_loopback, loopback_only
from tui.core.control.controls import ProxyControls
from tui.core.control.tracker import RunTracker
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.journal.writer import Journal, is_busy
from tui.core.otel import FLUSH_AT_EXIT_S as OTEL_FLUSH_AT_EXIT_S
from tui.core.otel import start_span_export
from tui.core.poll.snapshots import ServerSnapshot
from tui.core.prom.metrics import ProxyMetrics
from tui.core.proxy.address import ListenAddress, parse_listen
from tui.core.proxy.forward import Forwarder
from tui.core.proxy.pool import LivePoolConnector
from tui.core.proxy.rewrite import RequestRewriter
from tui.core.records import RequestRecord
from tui.core.redact import redact_url
from tui.core.team.gate import KeyGate

if TYPE_CHECKING:
    from tui.core.otel.exporter import SpanExport

log = logging.getLogger(__name__)

MIB = 1024 * 1024


class JournalOpenError(RuntimeError):
    """The journal file could not be created or opened (the message names the path)."""

# Bodies read whole by aiohttp: only the control API's small JSON ones (forwarded bodies are read by
# the forwarder, streamed past capture_limit_mb).
MAX_REQUEST_BYTES = 1024 * 1024
PROBLEM_REPEAT_S = 5.0


class ProxyService:
    """Listens, forwards to the upstream, and journals every exchange off the hot path.

    `on_record` is called on the event loop that ran `start()`, once per journaled request.
    `analysis` is "process" (a spawned worker analyzes and journals, so the event loop never waits for
    the GIL) or "thread" (same process; needed for unpicklable analyzer factories); None: [proxy] analysis.
    The switch stores default to the state files in the user data dir.
    `on_problem` (set it before `start()`) is called on the loop with a one-line description of each
    journal problem (a request not journaled; a locked, replaced or corrupt journal) and with None once
    rows are committed again; /health counts the same (`not_journaled`, `worker_restarts`, ...).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        journal_path: Path | None = None,
        on_record: Callable[[RequestRecord], None] | None = None,
        analyzer_factory: AnalyzerFactory | None = None,
        capture_limit: int | None = None,
        journal_enabled: bool = True,
        analysis: str | None = None,
        max_backlog_bytes: int | None = None,
        metrics: ProxyMetrics | None = None,
        mcp_store: McpSwitchStore | None = None,
        transform_switches: TransformSwitchStore | None = None,
        compaction_store: CompactionStore | None = None,
        rewrite: bool = True,
    ) -> None:
        ps = settings.proxy
        analysis = analysis or ps.analysis
        if capture_limit is None:
            capture_limit = ps.capture_limit_mb * MIB
        if max_backlog_bytes is None:
            max_backlog_bytes = ps.backlog_mb * MIB
        if analysis not in ("process", "thread"):
            raise ValueError(f"analysis must be 'process' or 'thread', not {analysis!r}")
        self.settings = settings
        self.address: ListenAddress = parse_listen(
            settings.proxy.listen, allow_remote=settings.proxy.allow_remote
        )
        self.upstream = settings.proxy.upstream.rstrip("/")
        self.journal_path = journal_path or settings.journal_path()
        self.on_record = on_record
        self.analyzer_factory = analyzer_factory
        self.analysis = analysis
        self.max_backlog_bytes = max_backlog_bytes
        self.capture_limit = capture_limit
        self.journal_enabled = journal_enabled
        # Beyond loopback every request needs a known key (a team user's or the serve token).
        self.gate = KeyGate.for_proxy(settings.team, need_key=not self.address.is_loopback)
        self.controls = ProxyControls.build(
            settings,
            metrics=metrics,
            mcp_store=mcp_store,
            transform_switches=transform_switches,
            compaction_store=compaction_store,
            gate=self.gate,
            rewrite=rewrite,
        )
        self.rewriter = RequestRewriter(self.controls) if rewrite else None
        self.journal: Journal | None = None
        self.pipeline: CaptureSink | None = None
        self.forwarder: Forwarder | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_at = 0.0
        self.port = self.address.port
        self.on_problem: Callable[[str | None], None] | None = None
        # Called on the loop with each provisional (in-flight) row, written as its request is forwarded.
        self.on_flight: Callable[[RequestRecord], None] | None = None
        self.problem: str | None = None
        self._problem_shown_at = 0.0
        self._spans: SpanExport | None = None  # thread analysis only: the OpenTelemetry exporter

    @property
    def metrics(self) -> ProxyMetrics:
        """Prometheus counters of this proxy."""
        return self.controls.metrics

    @property
    def tracker(self) -> RunTracker:
        """What this run has seen (MCP servers, savings)."""
        return self.controls.tracker

    @property
    def mcp_store(self) -> McpSwitchStore:
        """The MCP server switches."""
        return self.controls.mcp_store

    @property
    def transform_switches(self) -> TransformSwitchStore:
        """The transform switches."""
        return self.controls.transform_switches

    @property
    def compaction(self) -> CompactionService | None:
        """Proxy-mode compaction (None when rewriting is off)."""
        return self.controls.compaction

    @property
    def url(self) -> str:
        """Base URL clients use (with the real port once started)."""
        return ListenAddress(self.address.host, self.port).url()

    async def start(self) -> None:
        """Open the journal, start the analysis worker and begin listening."""
        if self.gate.need_key and not self.gate.has_keys():
            raise ConfigError(
                f"the proxy listens beyond loopback ({self.address.host}) and would accept no key: add a "
                "user with `ctxbudget team add NAME`, or create the serve token with "
                "`ctxbudget serve --show-token`"
            )
        self._loop = asyncio.get_running_loop()
        pipeline: CaptureSink
        if self.analysis == "process":
            if self.journal_enabled:
                self._check_journal()
            pipeline = ProcessPipeline(
                self.settings,
                self.journal_path if self.journal_enabled else None,
                self._deliver_from_thread,
                self.analyzer_factory,
                self.max_backlog_bytes,
                on_problem=self._problem_from_thread,
            )
        else:
            if self.journal_enabled:
                self.journal = self._open_journal()
            factory = self.analyzer_factory or SettingsAnalyzer(self.settings)
            # The process worker starts its own exporter; in thread mode it lives here.
            try:
                self._spans = start_span_export(self.settings.otel, upstream=self.upstream)
            except Exception:  # tracing is optional: forwarding and the journal go on without it
                log.exception("cannot start the OpenTelemetry export")
            pipeline = Pipeline(
                self.journal, factory, self._deliver_from_thread, self.max_backlog_bytes, self._spans
            )
        self.pipeline = pipeline
        pipeline.start()
        self._session = aiohttp.ClientSession(
            # Idle connections are let go before llama-server's own 5 s keep-alive ends them.
            connector=LivePoolConnector(limit=0, keepalive_timeout=4.0),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.forwarder = Forwarder(
            self.upstream,
            self._session,
            pipeline.submit,
            self.capture_limit,
            self.rewriter,
            body_timeout=self.settings.proxy.body_timeout,
            gate=self.gate,
            upstream_key=self.settings.server.api_key,
        )
        middlewares = [self._remote_needs_key, loopback_only] if self.gate.need_key else [loopback_only]
        app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=middlewares)
        app[LISTEN_HOST] = self.address.host  # a Host header naming it is this machine too
        app.router.add_route("GET", CONTROL_PREFIX + "health", self._health)
        ControlApi(self.controls).mount(app)
        app.router.add_route("*", CONTROL_PREFIX + "{tail:.*}", self._control_not_found)
        app.router.add_route("*", "/{tail:.*}", self.forwarder.handle)
        self._runner = web.AppRunner(
            app,
            handler_cancellation=True,
            access_log=None,
            # Bodies reach the upstream as sent (compressed ones too); the head of each request, and
            # an idle keep-alive connection, get header_timeout seconds (slow clients are dropped).
            auto_decompress=False,
            keepalive_timeout=self.settings.proxy.header_timeout,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.address.host, self.address.port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await self.stop()
            raise
        addresses = self._runner.addresses
        if addresses:
            self.port = int(addresses[0][1])
        self._started_at = time.time()
        gc.freeze()  # long-lived startup objects leave the GC's view: shorter collection pauses mid-stream

    def _check_journal(self) -> None:
        """Create the journal, surface path errors and set a corrupt file aside here, not in the worker.

        A journal locked by another process does not stop the proxy: the worker waits for the lock.
        """
        try:
            self._open_journal(wait_for_lock=False).close()
        except JournalOpenError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, sqlite3.OperationalError) and is_busy(cause)):
                raise
            self._show_problem(f"journal {self.journal_path} is locked by another process; rows wait for it")

    def _open_journal(self, wait_for_lock: bool = True) -> Journal:
        js = self.settings.journal
        try:
            return Journal(
                self.journal_path,
                store_bodies=js.store_bodies,
                retention_days=js.retention_days,
                max_rows=js.max_rows,
                on_problem=self._problem_from_thread,
                wait_for_lock=wait_for_lock,
            )
        except (OSError, sqlite3.Error) as exc:
            raise JournalOpenError(f"cannot open the journal {self.journal_path}: {exc}") from exc

    async def stop(self) -> None:
        """Stop listening, finish journaling what was captured, close everything."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.pipeline is not None:
            pipeline = self.pipeline
            await asyncio.to_thread(pipeline.stop)
            self.pipeline = None
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self._spans is not None:
            spans, self._spans = self._spans, None
            await asyncio.to_thread(spans.shutdown, OTEL_FLUSH_AT_EXIT_S)

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every finished exchange is journaled (tests, shutdown)."""
        return self.pipeline.flush(timeout) if self.pipeline is not None else True

    def status(self) -> dict[str, Any]:
        """The proxy's own state, as served on /_ctxbudget/health."""
        stats = self.forwarder.stats if self.forwarder is not None else None
        return {
            "status": "ok" if self._runner is not None else "stopped",
            "listen": self.url,
            "upstream": redact_url(self.upstream),
            "journal": str(self.journal_path) if self.journal_enabled else None,
            "uptime_s": round(time.time() - self._started_at, 3) if self._started_at else 0.0,
            "requests": stats.requests if stats else 0,
            "in_flight": stats.in_flight if stats else 0,
            "upstream_errors": stats.upstream_errors if stats else 0,
            "client_disconnects": stats.client_gone if stats else 0,
            "unauthorized": stats.unauthorized if stats else 0,
            "team_users": len(self.gate.users),
            "journaled": self.pipeline.journaled if self.pipeline else 0,
            "not_journaled": self.pipeline.not_journaled if self.pipeline else 0,
            "pipeline_failures": self.pipeline.failures if self.pipeline else 0,
            "worker_restarts": getattr(self.pipeline, "worker_restarts", 0),
            "worker_pid": getattr(self.pipeline, "worker_pid", None),
            "spooled": getattr(self.pipeline, "spooled", 0),
            "journal_problem": self.problem,
            "otel": self._spans.status() if self._spans is not None else getattr(self.pipeline, "otel", None),
        }

    @web.middleware
    async def _remote_needs_key(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Beyond loopback, ctxbudget's own paths (metrics) need a known key too (forwarding checks apart)."""
        if (
            request.path.startswith(CONTROL_PREFIX)
            and not is_loopback(request.remote)
            and self.gate.identify(request.headers) is None
        ):
            if self.forwarder is not None:
                self.forwarder.stats.unauthorized += 1
            return error(401, "unauthorized", "send a ctxbudget key (Authorization: Bearer KEY)")
        result: web.StreamResponse = await handler(request)
        return result

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def _control_not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"message": f"unknown ctxbudget control path {request.path}", "type": "not_found"}},
            status=404,
        )

    def observe_server(self, snapshot: ServerSnapshot) -> None:
        """Feed a server poller snapshot (call on the proxy's loop): server gauges, compaction context."""
        self.controls.observe_server(snapshot)

    async def ensure_compaction_counter(self) -> None:
        """Give the compaction service a token counter (built off the loop: it may probe the server)."""
        await self.controls.ensure_compaction_counter()

    def _deliver_from_thread(self, record: RequestRecord) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._on_loop, record)
        except RuntimeError:
            pass  # loop closed while shutting down

    def _problem_from_thread(self, text: str | None) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            self._show_problem(text)  # before start(): opening the journal
            return
        try:
            loop.call_soon_threadsafe(self._show_problem, text)
        except RuntimeError:
            pass  # loop closed while shutting down

    def _show_problem(self, text: str | None) -> None:
        """Record the problem and tell on_problem (a repeat at most every PROBLEM_REPEAT_S)."""
        now = time.monotonic()
        if text is not None and text == self.problem and now - self._problem_shown_at < PROBLEM_REPEAT_S:
            return
        if text is None and self.problem is None:
            return
        self.problem = text
        self._problem_shown_at = now
        not_journaled = self.pipeline.not_journaled if self.pipeline is not None else 0
        if text is not None and not_journaled:
            text = f"{text} ({not_journaled} requests not journaled so far)"
        if self.on_problem is not None:
            try:
                self.on_problem(text)
            except Exception:
                log.exception("on_problem callback failed")

    def _on_loop(self, record: RequestRecord) -> None:
        if self.journal_enabled and record.id <= 0:
            # Not committed (thread pipeline; the worker never sends these): counted as not_journaled.
            error = getattr(getattr(self.pipeline, "processor", None), "journal_error", None)
            self._show_problem(f"a request was not journaled: {error or 'journal write failed'}")
            return
        if self.problem is not None and self.journal_enabled:
            self._show_problem(None)  # a row was committed: whatever stood in the way is gone
        if record.in_flight:  # provisional: counted and handed on once its final row replaces it
            if self.on_flight is not None:
                try:
                    self.on_flight(record)
                except Exception:
                    log.exception("on_flight callback failed")
            return
        try:
            self.metrics.observe(record)
            self.tracker.observe(record)
        except Exception:
            log.exception("metrics or control state failed on one record")
        if self.on_record is not None:
            try:
                self.on_record(record)
            except Exception:
                log.exception("on_record callback failed")
