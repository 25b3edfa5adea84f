"""A small aiohttp server speaking docs/remote-api.md's feed stream, for RemoteDriver's resume tests.

It holds a journal (records) and a ring of numbered events like `ctxbudget serve`, and can cut every open
stream (a lost link), go silent (a stalled link: no pings) or restart with a new epoch.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tui.core.feed.codec import record_to_json, server_to_json
from tui.core.poll.snapshots import ServerSnapshot
from tui.core.records import RequestRecord

TOKEN = "test-token-0123456789abcdef"
INITIAL_ROWS = 150


def make_record(record_id: int) -> RequestRecord:
    """A journal row with an id (what the feed carries)."""
    return RequestRecord(record_id, 1_700_000_000.0 + record_id, "POST", "/v1/messages", 200, "s1", "main")


@dataclass
class ContractServe:
    """The server side of the feed contract; `app` is the aiohttp application."""

    ring_size: int = 1000
    ping_s: float = 0.2
    epoch: str = field(default_factory=lambda: secrets.token_hex(4))
    journal: list[RequestRecord] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    last_id: int = 0
    silent: bool = False
    requests: list[dict[str, str]] = field(default_factory=list)
    _streams: set[web.StreamResponse] = field(default_factory=set)
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_ctxbudget/info", self._info)
        app.router.add_get("/_ctxbudget/feed", self._feed)
        return app

    # --- what the GPU box does -------------------------------------------------------------------

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self.last_id += 1
        self.events.append({"id": self.last_id, "type": kind, "data": data})
        del self.events[: max(0, len(self.events) - self.ring_size)]
        self._new.set()

    def commit_rows(self, count: int) -> list[RequestRecord]:
        """Journal `count` new rows and announce them."""
        start = self.journal[-1].id + 1 if self.journal else 1
        rows = [make_record(i) for i in range(start, start + count)]
        self.journal += rows
        self._event("rows", {"records": [record_to_json(r) for r in rows], "initial": False})
        return rows

    def log(self, *lines: str) -> None:
        self._event("log", {"lines": list(lines)})

    def server(self, state: str = "up") -> None:
        self._event(
            "server", server_to_json(ServerSnapshot(ts=0.0, state=state, url="http://127.0.0.1:8080"))
        )

    def restart(self) -> None:
        """serve restarted: a new epoch and an empty ring (the journal stays)."""
        self.epoch = secrets.token_hex(4)
        self.events.clear()
        self.last_id = 0

    async def cut(self) -> None:
        """Drop every open stream (the link went away)."""
        for response in list(self._streams):
            transport = response._req.transport if response._req is not None else None  # noqa: SLF001
            if transport is not None:
                transport.abort()
        self._streams.clear()

    # --- handlers --------------------------------------------------------------------------------

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"

    async def _info(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": {"type": "unauthorized", "message": "no"}}, status=401)
        return web.json_response(
            {"version": "test", "epoch": self.epoch, "hostname": "gpu-box", "feed": {},
             "proxy_url": "http://10.0.0.2:3000", "server_url": "http://127.0.0.1:8080", "team": False}
        )  # fmt: skip

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error": {"type": "unauthorized", "message": "no"}}, status=401)
        query = dict(request.query)
        self.requests.append(query)
        epoch, rows_after = query.get("epoch"), int(query.get("rows_after", "-1"))
        after = int(query["after"]) if "after" in query else None
        first_id = self.events[0]["id"] if self.events else self.last_id + 1
        resumed = epoch == self.epoch and after is not None and first_id - 1 <= after <= self.last_id
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        self._streams.add(response)
        hello_id = self.last_id

        async def send(event: dict[str, Any]) -> None:
            await response.write(json.dumps(event).encode() + b"\n")

        async def send_rows(records: list[RequestRecord], initial: bool) -> None:
            data = {"records": [record_to_json(r) for r in records], "initial": initial}
            await send({"id": hello_id, "type": "rows", "data": data})

        hello = {"epoch": self.epoch, "resumed": resumed, "first_id": first_id, "last_id": hello_id}
        await send({"id": hello_id, "type": "hello", "data": hello})
        sent = hello_id
        if resumed:
            assert after is not None
            sent = after
        else:
            if rows_after < 0:
                await send_rows(self.journal[-INITIAL_ROWS:], True)
            else:
                fresh = [r for r in self.journal if r.id > rows_after]
                for start in range(0, len(fresh), 1000):
                    await send_rows(fresh[start : start + 1000], False)
            lines = [line for e in self.events if e["type"] == "log" for line in e["data"]["lines"]]
            await send({"id": hello_id, "type": "log", "data": {"lines": lines}})
            await send({"id": hello_id, "type": "log_backlog_read", "data": {}})
            servers = [e for e in self.events if e["type"] == "server"]
            if servers:
                await send({**servers[-1], "id": hello_id})
        try:
            while True:
                if not self.silent:
                    for event in [e for e in self.events if e["id"] > sent]:
                        if event["type"] == "rows":
                            records = [r for r in event["data"]["records"] if r["id"] > rows_after]
                            if records:
                                await send({**event, "data": {"records": records, "initial": False}})
                        else:
                            await send(event)
                        sent = event["id"]
                self._new.clear()
                try:
                    await asyncio.wait_for(self._new.wait(), self.ping_s)
                except TimeoutError:
                    if not self.silent:
                        await send({"id": sent, "type": "ping", "data": {}})
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(response)
        return response
