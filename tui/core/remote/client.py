"""Blocking calls to a remote `ctxbudget serve` (info, records, bodies, server control), from threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from tui.core.control.client import ControlClient
from tui.core.remote.target import RemoteTarget, TokenRefused, token_refused

TIMEOUT_S = 10.0
SERVER_ACTION_TIMEOUT_S = 600.0  # a restart loads a model: its step stream may pause for minutes


class RemoteError(RuntimeError):
    """The serve host did not answer, or answered with an error (the message says which)."""


class RemoteClient:
    """One pooled httpx client with the bearer token; every answer is checked for 401 first."""

    def __init__(self, target: RemoteTarget, timeout: float = TIMEOUT_S) -> None:
        self.target = target
        self.timeout = timeout
        self._http: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(
                    timeout=self.timeout, headers=self.target.headers(), verify=self.target.verify()
                )
            return self._http

    def close(self) -> None:
        """Close the pooled connection."""
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def control_client(self) -> ControlClient:
        """A client of the proxy control API that serve forwards (same token and trust)."""
        return ControlClient(
            self.target.url, timeout=5.0, headers=self.target.headers(), verify=self.target.verify()
        )

    def _get(self, path: str) -> Any:
        import httpx

        url = self.target.endpoint(path)
        try:
            response = self._client().get(url)
        except httpx.HTTPError as exc:
            raise RemoteError(f"{self.target.where} does not answer ({type(exc).__name__})") from exc
        if response.status_code == 401:
            raise TokenRefused(token_refused(self.target.url))
        return response

    def info(self) -> dict[str, Any]:
        """GET info: epoch, hostname, feed facts, proxy and server URLs."""
        response = self._get("info")
        if response.status_code != 200:
            raise RemoteError(f"{self.target.endpoint('info')}: HTTP {response.status_code}")
        data = response.json()
        return data if isinstance(data, dict) else {}

    def record(self, record_id: int) -> dict[str, Any] | None:
        """One record JSON with its parts (None: 404)."""
        response = self._get(f"records/{record_id}")
        if response.status_code != 200:
            return None
        data = response.json()
        return data if isinstance(data, dict) else None

    def body(self, record_id: int) -> bytes | None:
        """The stored request body (None: not kept)."""
        response = self._get(f"records/{record_id}/body")
        return bytes(response.content) if response.status_code == 200 else None

    def server_status(self) -> dict[str, Any]:
        """GET server: the remote ServerController.status() fields."""
        response = self._get("server")
        if response.status_code != 200:
            raise RemoteError(f"{self.target.endpoint('server')}: HTTP {response.status_code}")
        data = response.json()
        return data if isinstance(data, dict) else {}

    def server_action(self, action: str, payload: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST server/<action>: each NDJSON step as it arrives."""
        import httpx

        url = self.target.endpoint(f"server/{action}")
        try:
            with self._client().stream(
                "POST", url, json=payload, timeout=SERVER_ACTION_TIMEOUT_S
            ) as response:
                if response.status_code == 401:
                    raise TokenRefused(token_refused(self.target.url))
                if response.status_code != 200:
                    response.read()
                    raise RemoteError(f"{url}: HTTP {response.status_code}: {response.text[:300]}")
                for line in response.iter_lines():
                    if line.strip():
                        step = json.loads(line)
                        if isinstance(step, dict):
                            yield step
        except httpx.HTTPError as exc:
            raise RemoteError(
                f"{self.target.where} stopped answering during {action} ({type(exc).__name__})"
            ) from exc
