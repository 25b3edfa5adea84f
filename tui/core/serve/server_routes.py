"""Server control and the doctor over HTTP: start/stop/restart stream their steps as NDJSON."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from tui.core.actions.server_control import PreflightError, ServerController
from tui.core.actions.server_errors import ServerControlError
from tui.core.config import Settings

ACTIONS = ("start", "stop", "restart")
MODEL_ACTIONS = ("load", "unload")  # router mode; restart with a "model" acts on that one model too


def json_error(status: int, kind: str, message: str) -> web.Response:
    """serve's own error answer."""
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


def _int_or_none(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: give a non-negative integer or null")
    return value


class ServerRoutes:
    """One server action at a time, run in a thread (ServerController blocks while it waits)."""

    def __init__(self, settings: Settings, on_done: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self.on_done = on_done  # e.g. poll the server now
        self._busy = threading.Lock()

    def add_to(self, app: web.Application, prefix: str) -> None:
        """Register the routes."""
        app.router.add_get(prefix + "server", self.status)
        for action in (*ACTIONS, *MODEL_ACTIONS):
            app.router.add_post(prefix + "server/" + action, self.action)
        app.router.add_get(prefix + "doctor", self.doctor)

    async def status(self, request: web.Request) -> web.Response:
        """GET server: ServerController.status()."""
        status = await asyncio.to_thread(ServerController(self.settings).status)
        return web.json_response(status.to_json())

    async def doctor(self, request: web.Request) -> web.Response:
        """GET doctor: every check, as JSON and as the doctor's text."""
        from tui.core.doctor import diagnose, render_text

        facts, results = await diagnose(self.settings)
        return web.json_response(
            {"results": [r.to_json() for r in results], "text": render_text(results, facts)}
        )

    async def action(self, request: web.Request) -> web.StreamResponse:
        """POST server/{start,stop,restart,load,unload}: the steps as NDJSON, the last line the outcome."""
        action = request.path.rsplit("/", 1)[-1]
        try:
            raw = await request.read()
            body = orjson.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            model = body.get("model")
            if model is not None and (not isinstance(model, str) or not model):
                raise ValueError("model: give a model name (a string) or leave it out")
            if action in MODEL_ACTIONS and not model:
                raise ValueError(f"model: {action} acts on one model of a router; name it")
            if action in ("start", "stop") and model:
                raise ValueError(f"model: {action} acts on the whole server; leave model out")
            ctx_size = _int_or_none(body.get("ctx_size"), "ctx_size")
            parallel = _int_or_none(body.get("parallel"), "parallel")
            force = bool(body.get("force", False))
            keep = body.get("keep_cache")
            keep_cache = None if keep is None else bool(keep)
        except ValueError as exc:
            return json_error(400, "bad_request", str(exc))

        def run(put: Callable[[dict[str, Any]], None]) -> None:
            if model:
                self._model_action(action, model, put)
                return
            try:
                controller = ServerController(self.settings, on_state=lambda s: put(s.to_json()))
                if action == "stop":
                    controller.stop()
                elif action == "start":
                    controller.start(ctx_size, parallel, force)
                else:
                    controller.restart(ctx_size, parallel, force, keep_cache=keep_cache)
            except PreflightError as exc:
                put({"refused": str(exc), "results": [r.to_json() for r in exc.results]})
            except ServerControlError as exc:
                put({"refused": str(exc), "results": []})

        return await self._stream(request, action, run)

    def _model_action(self, action: str, model: str, put: Callable[[dict[str, Any]], None]) -> None:
        """Router mode: each state the model passes as {"model", "status"}, then ModelAction.to_json()."""
        from tui.core.actions.router_control import RouterControl, RouterControlError

        server = self.settings.server
        control = RouterControl(
            server.url, server.api_key, on_status=lambda name, status: put({"model": name, "status": status})
        )
        try:
            put(getattr(control, action)(model).to_json())
        except RouterControlError as exc:
            put({"error": str(exc)})

    async def _stream(
        self, request: web.Request, action: str, run: Callable[[Callable[[dict[str, Any]], None]], None]
    ) -> web.StreamResponse:
        """Run one action in a thread (one at a time: 409 else), streaming what it puts as NDJSON."""
        if not self._busy.acquire(blocking=False):
            return json_error(409, "busy", "another server action is running; wait for it to finish")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()

        def put(item: bytes | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            try:
                run(lambda data: put(orjson.dumps(data) + b"\n"))
            finally:
                self._busy.release()
                put(None)

        worker = threading.Thread(target=work, name=f"serve-server-{action}", daemon=True)
        worker.start()
        try:
            while (line := await queue.get()) is not None:
                await response.write(line)
        except ConnectionResetError:
            pass  # the action goes on; the client sees its outcome in the feed's server snapshots
        finally:
            self.on_done()
        return response
