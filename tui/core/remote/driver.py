"""The feed of a remote `ctxbudget serve`: its NDJSON event stream replayed into the local DashboardFeed."""

from __future__ import annotations

import asyncio
import json
import logging
import math
from typing import TYPE_CHECKING, Any, cast, get_args
from urllib.parse import urlsplit

from tui.core.feed.codec import gpu_from_json, record_from_json, server_from_json
from tui.core.feed.updates import FeedInfo, SourceHealth, SourceName, SourceStatus
from tui.core.records import RequestRecord
from tui.core.remote.cursor import FeedCursor
from tui.core.remote.server_control import RemoteServerControl
from tui.core.serve.remote_source import RemoteError, RemoteSource, TokenRefused, token_refused

if TYPE_CHECKING:
    from tui.core.control.client import ControlClient
    from tui.core.feed.acting import ServerControl
    from tui.core.feed.feed import DashboardFeed

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 15.0  # serve pings every 5 s: three missed pings mean the link is down
CONNECT_TIMEOUT_S = 5.0
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0)
SOURCES = frozenset(get_args(SourceName))
HEALTHS = frozenset(get_args(SourceHealth))


class FeedRefused(RuntimeError):
    """serve answered the feed request with an error other than 401 (retried with backoff)."""


def serve_address(url: str) -> str:
    """host:port of a serve URL (what the header shows)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def remote_feed_info(url: str, data: dict[str, Any]) -> FeedInfo:
    """FeedInfo of a remote feed from GET /_ctxbudget/info (the URL alone while it has not answered)."""
    feed = data.get("feed") if isinstance(data.get("feed"), dict) else {}
    assert isinstance(feed, dict)
    proxy = str(data.get("proxy_url") or "")
    return FeedInfo(
        mode="remote",
        proxy_address=urlsplit(proxy).netloc if "//" in proxy else proxy,
        journal_path=str(feed.get("journal_path") or ""),
        log_path=str(feed.get("log_path") or ""),
        server_url=str(data.get("server_url") or feed.get("server_url") or ""),
        remote=serve_address(url),
        remote_host=str(data.get("hostname") or ""),
    )


def _why(exc: BaseException, read_timeout: float) -> str:
    import httpx

    if isinstance(exc, httpx.ReadTimeout):
        return f"no data for {read_timeout:g} s"
    if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, RemoteError):
        return "cannot connect"
    return str(exc) if isinstance(exc, FeedRefused) else type(exc).__name__


class RemoteDriver:
    """Reads GET /_ctxbudget/feed; after a lost link, reconnects with backoff and resumes where it stopped."""

    def __init__(
        self,
        source: RemoteSource,
        info: dict[str, Any] | None = None,
        *,
        read_timeout: float = READ_TIMEOUT_S,
        backoff: tuple[float, ...] = BACKOFF_S,
    ) -> None:
        self.source = source
        self.where = serve_address(source.url)
        self.cursor = FeedCursor()
        self.read_timeout = read_timeout
        self.backoff = backoff
        self.info = remote_feed_info(source.url, info or {})
        self._info_known = info is not None
        self.connected = False
        self.connects = 0  # streams opened (tests and the header count reconnects)
        self._control: ControlClient | None = None
        self._server_control = RemoteServerControl(
            source, self.info.remote_host or self.where, str((info or {}).get("model") or "")
        )

    # --- what the UI acts through ----------------------------------------------------------------

    def control_client(self) -> ControlClient:
        """The proxy control API that serve forwards, with the token."""
        if self._control is None:
            self._control = self.source.control_client()
        return self._control

    def server_control(self) -> ServerControl:
        """llama-server control on the serve host."""
        return self._server_control

    # --- detail loads (worker threads) -----------------------------------------------------------

    def store_speeds(self, record: RequestRecord) -> None:
        """serve stores the speeds in its own journal (its feed joins them from the same log)."""

    def take_backlog(self) -> list[RequestRecord] | None:
        """No local journal: the first rows come over the stream."""
        return None

    def load_record(self, record_id: int) -> RequestRecord | None:
        """GET records/{id}."""
        try:
            return self.source.record(record_id)
        except RemoteError:
            return None

    def load_body(self, record_id: int) -> bytes | None:
        """GET records/{id}/body."""
        try:
            return self.source.body(record_id)
        except RemoteError:
            return None

    # --- running ---------------------------------------------------------------------------------

    async def run(self, feed: DashboardFeed) -> None:
        """Stream, and after a lost link wait (saying so) and resume; a refused token ends it."""
        import httpx

        timeout = httpx.Timeout(self.read_timeout, connect=CONNECT_TIMEOUT_S)
        failures = 0
        async with httpx.AsyncClient(
            timeout=timeout, headers=self._headers(), verify=self.source.verify, trust_env=False
        ) as http:
            try:
                while True:
                    try:
                        await self._stream(http, feed)
                        why = "the server closed the stream"
                    except TokenRefused as exc:
                        self.connected = False
                        feed.set_status(SourceStatus("link", "error", str(exc)))
                        return
                    except (httpx.HTTPError, RemoteError, FeedRefused, ValueError) as exc:
                        why = _why(exc, self.read_timeout)
                    if self.connected:
                        failures = 0
                    self.connected = False
                    delay = self.backoff[min(failures, len(self.backoff) - 1)]
                    failures += 1
                    await self._wait(feed, delay, why)
            finally:
                await asyncio.to_thread(self.source.close)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.source.token}"} if self.source.token else {}

    async def _wait(self, feed: DashboardFeed, delay: float, why: str) -> None:
        left = delay
        while left > 0:
            feed.set_status(
                SourceStatus(
                    "link",
                    "waiting",
                    f"disconnected from {self.where} ({why}), retrying in {math.ceil(left)}s",
                )  # fmt: skip
            )
            step = min(1.0, left)
            await asyncio.sleep(step)
            left -= step

    async def _stream(self, http: Any, feed: DashboardFeed) -> None:
        # Read again after every lost link: a restarted serve may run its proxy elsewhere, another model.
        if not self._info_known or self.connects:
            data = await asyncio.to_thread(self.source.info)
            self.info = remote_feed_info(self.source.url, data)
            self._info_known = True
            self._server_control.where = f" on {self.info.remote_host or self.where}"
            self._server_control.model = str(data.get("model") or "") or self._server_control.model
        async with http.stream(
            "GET", self.source.url + "/_ctxbudget/feed", params=self.cursor.query(feed.in_flight_ids)
        ) as response:
            if response.status_code == 401:
                raise TokenRefused(token_refused(self.source.url))
            if response.status_code != 200:
                await response.aread()
                raise FeedRefused(f"HTTP {response.status_code}: {response.text[:200]}")
            async for line in response.aiter_lines():
                if line.strip():
                    self._handle(feed, json.loads(line))

    def _handle(self, feed: DashboardFeed, event: dict[str, Any]) -> None:
        kind = str(event.get("type") or "")
        event_id = int(event.get("id") or 0)
        data = event.get("data") or {}
        if kind == "hello":
            resumed = self.cursor.hello(event_id, data)
            if not resumed and self.connects:
                feed.restart_log()  # the log backlog comes again: start the pane and the parser afresh
            self.connected = True
            self.connects += 1
            note = "resumed" if resumed else "connected"
            feed.set_status(SourceStatus("link", "ok", f"{note}: remote {self.where}"))
        elif kind == "rows":
            initial = bool(data.get("initial"))
            flying = feed.in_flight_ids if data.get("replaced") else ()
            fresh = self.cursor.new_rows(list(data.get("records") or []), flying)
            if fresh or initial:
                feed.add_records([record_from_json(r) for r in fresh], initial=initial)
        elif kind == "log":
            feed.add_log_lines([str(line) for line in data.get("lines") or []])
        elif kind == "log_backlog_read":
            feed.log_backlog_read()
        elif kind == "server":
            feed.set_server(server_from_json(data))
        elif kind == "gpu":
            feed.set_gpu(gpu_from_json(data))
        elif kind == "status":
            source, health = data.get("source"), data.get("health")
            if source in SOURCES and health in HEALTHS and source != "link":
                status = SourceStatus(
                    cast(SourceName, source), cast(SourceHealth, health), str(data.get("message") or "")
                )
                feed.set_status(status)
        self.cursor.event(event_id, kind)
