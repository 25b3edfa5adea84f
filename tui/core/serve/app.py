"""The serve HTTP app: info, the feed stream, journal rows and records, server control, proxy forwarding."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tui import __version__
from tui.core.config import Settings
from tui.core.feed.codec import record_to_json
from tui.core.feed.live import LiveDriver
from tui.core.journal.reader import JournalReader
from tui.core.proxy.address import host_is_loopback
from tui.core.records import RequestRecord
from tui.core.serve.auth import auth_middleware
from tui.core.serve.hub import EventHub
from tui.core.serve.server_routes import ServerRoutes, json_error
from tui.core.serve.stream import feed_lines

PREFIX = "/_ctxbudget/"
ROWS_LIMIT = 1000
FLYING_LIMIT = 200  # in-flight rows one client names when it reconnects
# The proxy's control API paths serve forwards to its proxy (the proxy keeps its own checks).
FORWARDED = (("GET", "health"), ("GET", "state"), ("POST", "mcp"), ("POST", "transforms"),
             ("POST", "compact"), ("POST", "compact/undo"), ("GET", "metrics"))  # fmt: skip
FORWARD_TIMEOUT_S = 600.0  # a compaction summarises with the model
HUB: web.AppKey[EventHub] = web.AppKey("serve_hub", EventHub)


@dataclasses.dataclass
class ServeOptions:
    """How serve was started (for /info and the auth rule)."""

    listen_host: str
    token: str
    token_required: bool


def agent_proxy_url(proxy_url: str, listen: str, request_host: str) -> str:
    """The proxy's URL as a client of serve reaches it: a wildcard listen host becomes serve's host name."""
    from urllib.parse import urlsplit

    from tui.core.settings_checks import split_host_port

    if not proxy_url:
        return ""
    host = split_host_port(listen)[0].strip("[]")
    if host in ("0.0.0.0", "::", "") and request_host:
        host = request_host
    elif host in ("0.0.0.0", "::", "") or host_is_loopback(host):
        return proxy_url
    shown = f"[{host}]" if ":" in host else host
    parts = urlsplit(proxy_url)
    return f"{parts.scheme}://{shown}:{parts.port}"


def _int_arg(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise web.HTTPBadRequest(
            text=f'{{"error": {{"type": "bad_request", "message": "{name}: not an integer"}}}}',
            content_type="application/json",
        ) from None


def _id_list(request: web.Request, name: str, most: int = FLYING_LIMIT) -> list[int]:
    """A comma-separated list of row ids (at most `most`)."""
    text = request.query.get(name, "")
    try:
        return [int(part) for part in text.split(",") if part][:most]
    except ValueError:
        raise web.HTTPBadRequest(
            text=f'{{"error": {{"type": "bad_request", "message": "{name}: not a list of row ids"}}}}',
            content_type="application/json",
        ) from None


class ServeApp:
    """Routes over one EventHub and its LiveDriver."""

    def __init__(self, settings: Settings, driver: LiveDriver, hub: EventHub, options: ServeOptions) -> None:
        self.settings = settings
        self.driver = driver
        self.hub = hub
        self.options = options
        self.journal: Path = driver.journal_path
        self._http: aiohttp.ClientSession | None = None
        self.server_routes = ServerRoutes(settings)

    def build(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application(
            middlewares=[
                auth_middleware(
                    self.options.token,
                    required=self.options.token_required,
                    listen_host=self.options.listen_host,
                )
            ],
            client_max_size=64 * 1024 * 1024,
        )
        app[HUB] = self.hub
        app.router.add_get(PREFIX + "info", self.info)
        app.router.add_get(PREFIX + "feed", self.feed)
        app.router.add_get(PREFIX + "rows", self.rows)
        app.router.add_get(PREFIX + "records/{id}", self.record)
        app.router.add_get(PREFIX + "records/{id}/body", self.body)
        self.server_routes.add_to(app, PREFIX)
        for method, path in FORWARDED:
            app.router.add_route(method, PREFIX + path, self.forward)
        app.on_cleanup.append(self._close_http)
        return app

    async def _close_http(self, app: web.Application) -> None:
        if self._http is not None:
            await self._http.close()

    # --- feed and journal ------------------------------------------------------------------------

    async def info(self, request: web.Request) -> web.Response:
        """GET info."""
        server = self.hub.server
        return web.json_response(
            {
                "version": __version__,
                "epoch": self.hub.epoch,
                "hostname": socket.gethostname(),
                "feed": dataclasses.asdict(self.driver.info),
                "proxy_url": agent_proxy_url(
                    self.driver.proxy_url, self.settings.proxy.listen, request.url.host or ""
                ),
                "server_url": self.settings.server.url,
                "model": server.model if server else "",
                "n_ctx_slot": (server.n_ctx_slot or None) if server else None,
                "team": self.settings.team.enabled,
            }
        )

    async def feed(self, request: web.Request) -> web.StreamResponse:
        """GET feed: the NDJSON event stream."""
        epoch = request.query.get("epoch") or None
        after = _int_arg(request, "after", -1) if "after" in request.query else None
        rows_after = _int_arg(request, "rows_after", -1)
        flying = _id_list(request, "flying")
        response = web.StreamResponse(
            headers={"Content-Type": "application/x-ndjson", "Cache-Control": "no-store"}
        )
        await response.prepare(request)
        try:
            async for line in feed_lines(self.hub, self.journal, epoch, after, rows_after, flying):
                await response.write(line)
        except (ConnectionResetError, ConnectionError):
            pass  # the client went away; it resumes from its last id
        return response

    async def rows(self, request: web.Request) -> web.Response:
        """GET rows?after=R&limit=N (oldest first) or rows?last=N (the newest N, oldest first)."""
        limit = max(0, min(_int_arg(request, "limit", ROWS_LIMIT), ROWS_LIMIT))
        last = _int_arg(request, "last", -1)
        after = _int_arg(request, "after", -1)

        def read() -> tuple[list[RequestRecord], int]:
            reader = JournalReader(self.journal)
            try:
                if last >= 0:
                    records = reader.latest(min(last, ROWS_LIMIT))
                else:
                    records = reader.since(after, limit) if limit else []
                newest = reader.latest(1)
                return records, newest[-1].id if newest else 0
            finally:
                reader.close()

        records, last_id = await asyncio.to_thread(read)
        return web.json_response(
            {"records": [record_to_json(r) for r in records], "last_id": last_id},
            dumps=_dumps,
        )

    def _record_id(self, request: web.Request) -> int:
        try:
            return int(request.match_info["id"])
        except ValueError:
            raise web.HTTPNotFound() from None

    async def record(self, request: web.Request) -> web.Response:
        """GET records/{id}: one record with its anatomy parts."""
        record = await asyncio.to_thread(self.driver.load_record, self._record_id(request))
        if record is None:
            return json_error(404, "not_found", "no such record")
        return web.json_response(record_to_json(record), dumps=_dumps)

    async def body(self, request: web.Request) -> web.Response:
        """GET records/{id}/body: the stored request body."""
        body = await asyncio.to_thread(self.driver.load_body, self._record_id(request))
        if body is None:
            return json_error(404, "not_found", "no stored body for this record ([journal] store_bodies)")
        return web.Response(body=body, content_type="application/octet-stream")

    # --- the proxy's control API -----------------------------------------------------------------

    async def forward(self, request: web.Request) -> web.StreamResponse:
        """Pass a control-API call to the proxy on loopback; 503 when none answers."""
        base = self.driver.control_client().base_url
        url = base + request.path
        if self._http is None:
            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S))
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        try:
            async with self._http.request(
                request.method, url, params=request.query, data=await request.read(), headers=headers
            ) as answer:
                payload = await answer.read()
                return web.Response(
                    body=payload,
                    status=answer.status,
                    content_type=answer.content_type,
                    charset=answer.charset,
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            return web.json_response(
                {"error": f"no ctxbudget proxy answers at {base} ({type(exc).__name__}): start serve with "
                 "--proxy, or run `ctxbudget proxy` on this machine", "type": "unavailable"},
                status=503,
            )  # fmt: skip


def _dumps(data: Any) -> str:
    import orjson

    return orjson.dumps(data).decode("utf-8")
