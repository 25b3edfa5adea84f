"""ProxyService: the proxy as a start/stop service, shared by `ctxbudget proxy` and the dashboard."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tui.core.config import Settings
from tui.core.journal import Journal
from tui.core.pipeline import (
    DEFAULT_BACKLOG_BYTES,
    AnalyzerFactory,
    CaptureSink,
    Pipeline,
    SettingsAnalyzer,
)
from tui.core.pipeline_process import ProcessPipeline
from tui.core.proxy.address import ListenAddress, parse_listen
from tui.core.proxy.capture import DEFAULT_CAPTURE_LIMIT
from tui.core.proxy.forward import Forwarder
from tui.core.records import RequestRecord

log = logging.getLogger(__name__)

CONTROL_PREFIX = "/_ctxbudget/"


class JournalOpenError(RuntimeError):
    """The journal file could not be created or opened (the message names the path)."""

MAX_REQUEST_BYTES = 1024 * 1024 * 1024


class ProxyService:
    """Listens, forwards to the upstream, and journals every exchange off the hot path.

    `on_record` is called on the event loop that ran `start()`, once per journaled request.
    `analysis` is "process" (default: a spawned worker analyzes and journals, so the event loop never
    waits for the GIL) or "thread" (same process; needed for unpicklable analyzer factories).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        journal_path: Path | None = None,
        on_record: Callable[[RequestRecord], None] | None = None,
        analyzer_factory: AnalyzerFactory | None = None,
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
        journal_enabled: bool = True,
        analysis: str = "process",
        max_backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
    ) -> None:
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
        self.journal: Journal | None = None
        self.pipeline: CaptureSink | None = None
        self.forwarder: Forwarder | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_at = 0.0
        self.port = self.address.port

    @property
    def url(self) -> str:
        """Base URL clients use (with the real port once started)."""
        return ListenAddress(self.address.host, self.port).url()

    async def start(self) -> None:
        """Open the journal, start the analysis worker and begin listening."""
        self._loop = asyncio.get_running_loop()
        pipeline: CaptureSink
        if self.analysis == "process":
            if self.journal_enabled:
                self._open_journal().close()  # create it and surface path errors here, not in the worker
            pipeline = ProcessPipeline(
                self.settings,
                self.journal_path if self.journal_enabled else None,
                self._deliver_from_thread,
                self.analyzer_factory,
                self.max_backlog_bytes,
            )
        else:
            if self.journal_enabled:
                self.journal = self._open_journal()
            factory = self.analyzer_factory or SettingsAnalyzer(self.settings)
            pipeline = Pipeline(self.journal, factory, self._deliver_from_thread, self.max_backlog_bytes)
        self.pipeline = pipeline
        pipeline.start()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30.0),
            auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        self.forwarder = Forwarder(self.upstream, self._session, pipeline.submit, self.capture_limit)
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_route("GET", CONTROL_PREFIX + "health", self._health)
        app.router.add_route("*", CONTROL_PREFIX + "{tail:.*}", self._control_not_found)
        app.router.add_route("*", "/{tail:.*}", self.forwarder.handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
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

    def _open_journal(self) -> Journal:
        js = self.settings.journal
        try:
            return Journal(
                self.journal_path,
                store_bodies=js.store_bodies,
                retention_days=js.retention_days,
                max_rows=js.max_rows,
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

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every finished exchange is journaled (tests, shutdown)."""
        return self.pipeline.flush(timeout) if self.pipeline is not None else True

    def status(self) -> dict[str, Any]:
        """The proxy's own state, as served on /_ctxbudget/health."""
        stats = self.forwarder.stats if self.forwarder is not None else None
        return {
            "status": "ok" if self._runner is not None else "stopped",
            "listen": self.url,
            "upstream": self.upstream,
            "journal": str(self.journal_path) if self.journal_enabled else None,
            "uptime_s": round(time.time() - self._started_at, 3) if self._started_at else 0.0,
            "requests": stats.requests if stats else 0,
            "in_flight": stats.in_flight if stats else 0,
            "upstream_errors": stats.upstream_errors if stats else 0,
            "client_disconnects": stats.client_gone if stats else 0,
            "journaled": self.pipeline.processed if self.pipeline else 0,
            "pipeline_failures": self.pipeline.failures if self.pipeline else 0,
        }

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(self.status())

    async def _control_not_found(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"message": f"unknown ctxbudget control path {request.path}", "type": "not_found"}},
            status=404,
        )

    def _deliver_from_thread(self, record: RequestRecord) -> None:
        loop, callback = self._loop, self.on_record
        if loop is None or callback is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(_safe_call, callback, record)
        except RuntimeError:
            pass  # loop closed while shutting down


def _safe_call(callback: Callable[[RequestRecord], None], record: RequestRecord) -> None:
    try:
        callback(record)
    except Exception:
        log.exception("on_record callback failed")
