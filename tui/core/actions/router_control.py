"""Router mode: load, unload or restart one model (POST /models/load|unload), waiting for its new state."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tui.core.poll.router import parse_router_models
from tui.core.poll.snapshots import RouterModel
from tui.core.redact import redact_text

WAIT_S = 120.0
POLL_S = 0.1
# A model that failed before reads "failed" until its new load starts: believe "failed" again only after
# the state changed or this long after the request.
FAILED_AGAIN_S = 3.0


def router_models(url: str, api_key: str = "") -> tuple[RouterModel, ...]:
    """A router's models with their states and, for loaded ones, slots and n_ctx (one poll; blocking)."""
    import asyncio

    from tui.core.poll.server_poller import ServerPoller

    async def poll() -> tuple[RouterModel, ...]:
        poller = ServerPoller(url, api_key, metrics=False)
        try:
            return (await poller.poll_once()).models
        finally:
            await poller.aclose()

    return asyncio.run(poll())


class RouterControlError(RuntimeError):
    """The router refused or did not answer (the message names the model and what to do)."""


@dataclass(frozen=True)
class ModelAction:
    """What happened to one model: the action, its final state, and the states seen on the way."""

    action: str
    model: str
    status: str
    seen: tuple[str, ...]
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the model ended where the action meant it to."""
        return self.status == ("unloaded" if self.action == "unload" else "loaded")

    def describe(self) -> str:
        """One line for the CLI."""
        path = " → ".join(self.seen)
        code = f" (exit code {self.exit_code})" if self.exit_code is not None and not self.ok else ""
        outcome = "done" if self.ok else "failed"
        return f"{self.model}: {self.action} {outcome}, now {self.status}{code} ({path})"

    def to_json(self) -> dict[str, object]:
        """Plain-JSON form."""
        return {
            "action": self.action, "model": self.model, "status": self.status, "ok": self.ok,
            "seen": list(self.seen), "exit_code": self.exit_code,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelAction:
        """Back from to_json() (what serve sends a remote client)."""
        code = data.get("exit_code")
        return cls(
            str(data.get("action") or ""),
            str(data.get("model") or ""),
            str(data.get("status") or "unknown"),
            tuple(str(s) for s in data.get("seen") or ()),
            code if isinstance(code, int) else None,
        )


class RouterControl:
    """Acts on one router's models; each call waits until the model settles (or WAIT_S passes)."""

    def __init__(
        self,
        url: str,
        api_key: str = "",
        *,
        wait_s: float = WAIT_S,
        on_status: Callable[[str, str], None] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.wait_s = wait_s
        self.on_status = on_status  # (model, status) each time a model's state changes, for progress

    def _saw(self, seen: list[str], name: str, status: str) -> None:
        if not seen or seen[-1] != status:
            seen.append(status)
            if self.on_status is not None:
                self.on_status(name, status)

    def models(self) -> tuple[RouterModel, ...]:
        """GET /models; RouterControlError when the server is no router."""
        try:
            response = httpx.get(self.url + "/models", headers=self.headers, timeout=10, trust_env=False)
        except httpx.HTTPError as exc:
            raise RouterControlError(redact_text(f"GET /models failed: {exc}")) from exc
        models = parse_router_models(response.json() if response.status_code == 200 else None)
        if not models:
            raise RouterControlError(
                f"{self.url} lists no router models (start llama-server with --models-dir or --models-preset)"
            )
        return models

    def _find(self, name: str) -> RouterModel:
        models = self.models()
        for model in models:
            if model.id == name:
                return model
        known = ", ".join(m.id for m in models)
        raise RouterControlError(f"the router has no model {name!r}; it has: {known}")

    def _post(self, what: str, name: str) -> None:
        try:
            response = httpx.post(
                f"{self.url}/models/{what}", json={"model": name}, headers=self.headers, timeout=30,
                trust_env=False,
            )  # fmt: skip
        except httpx.HTTPError as exc:
            raise RouterControlError(redact_text(f"POST /models/{what} failed: {exc}")) from exc
        if response.status_code != 200:
            try:
                message = str(response.json()["error"]["message"])
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise RouterControlError(f"{what} {name}: HTTP {response.status_code}: {redact_text(message)}")

    def _settle(
        self, action: str, name: str, done: Callable[[RouterModel, float], bool], seen: list[str]
    ) -> ModelAction:
        started = time.monotonic()
        model = self._find(name)
        while True:
            self._saw(seen, name, model.status)
            elapsed = time.monotonic() - started
            if done(model, elapsed) or elapsed > self.wait_s:
                return ModelAction(action, name, model.status, tuple(seen), model.exit_code)
            time.sleep(POLL_S)
            model = self._find(name)

    def load(self, name: str) -> ModelAction:
        """Load a model and wait until it is loaded or its load failed."""
        seen: list[str] = []
        self._saw(seen, name, self._find(name).status)
        if seen[-1] in ("loaded", "sleeping"):
            return ModelAction("load", name, seen[-1], tuple(seen))
        self._post("load", name)
        before = len(seen)

        def done(model: RouterModel, elapsed: float) -> bool:
            if model.status == "loaded":
                return True
            return model.status == "failed" and (len(seen) > before or elapsed > FAILED_AGAIN_S)

        return self._settle("load", name, done, seen)

    def unload(self, name: str) -> ModelAction:
        """Unload a model (frees its memory) and wait until it is unloaded."""
        seen: list[str] = []
        self._saw(seen, name, self._find(name).status)
        if seen[-1] in ("unloaded", "failed"):
            return ModelAction("unload", name, seen[-1], tuple(seen))
        self._post("unload", name)
        return self._settle("unload", name, lambda m, _: m.status == "unloaded", seen)

    def restart(self, name: str) -> ModelAction:
        """Unload, then load again (a new process with the preset re-read)."""
        down = self.unload(name)
        up = self.load(name)
        seen = (*down.seen, *up.seen[1:]) if up.seen[:1] == down.seen[-1:] else (*down.seen, *up.seen)
        return ModelAction("restart", name, up.status, seen, up.exit_code)
