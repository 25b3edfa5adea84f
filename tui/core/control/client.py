"""A small client of the proxy's control API, used by the CLI and the dashboard (embedded or --attach)."""

from __future__ import annotations

from typing import Any

from tui.core.config import Settings

CONTROL_PREFIX = "/_ctxbudget/"


class ControlError(RuntimeError):
    """The proxy answered with an error (the message is its own) or did not answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def proxy_base_url(settings: Settings) -> str:
    """The proxy's base URL from [proxy] listen (a wildcard host is reached through loopback)."""
    host, _, port = settings.proxy.listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _with_user(payload: dict[str, Any], user: str | None) -> dict[str, Any]:
    """The payload naming a team user (no key at all for the single user: older proxies accept it)."""
    return {**payload, "user": user} if user else payload


class ControlClient:
    """Synchronous calls to /_ctxbudget/...; every answer is the endpoint's JSON object."""

    def __init__(self, base_url: str, timeout: float = 10.0, *, token: str = "", verify: Any = True) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token = token  # a remote `ctxbudget serve`'s bearer token (it forwards to its proxy)
        self.verify = verify
        self._http: Any = None

    def _client(self) -> Any:
        """One pooled httpx client: a new one per call costs an SSL context (~15 ms of CPU) every poll."""
        if self._http is None:
            import httpx  # deferred: the dashboard's first frame does not wait for it

            headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
            self._http = httpx.Client(timeout=self.timeout, headers=headers, verify=self.verify)
        return self._http

    def close(self) -> None:
        """Close the pooled connection."""
        if self._http is not None:
            self._http.close()
            self._http = None

    @classmethod
    def from_settings(cls, settings: Settings, timeout: float = 10.0) -> ControlClient:
        """A client for the proxy at [proxy] listen."""
        return cls(proxy_base_url(settings), timeout)

    def _call(
        self, method: str, path: str, payload: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        url = self.base_url + CONTROL_PREFIX + path
        import httpx

        try:
            response = self._client().request(method, url, json=payload, timeout=timeout or self.timeout)
        except httpx.HTTPError as exc:
            raise ControlError(f"the proxy does not answer at {url} ({type(exc).__name__})") from exc
        try:
            data = response.json()
        except ValueError:
            data = {"error": response.text[:300]}
        if response.status_code != 200:
            message = data.get("error") if isinstance(data, dict) else None
            raise ControlError(
                f"HTTP {response.status_code}: {message or response.reason_phrase}", response.status_code
            )
        return data if isinstance(data, dict) else {"result": data}

    def reachable(self) -> bool:
        """Whether a ctxbudget proxy answers (its health endpoint)."""
        try:
            self._call("GET", "health", timeout=min(self.timeout, 1.0))
        except ControlError:
            return False
        return True

    def health(self) -> dict[str, Any]:
        """GET health."""
        return self._call("GET", "health")

    def state(self, user: str | None = None) -> dict[str, Any]:
        """GET state: MCP switches (of `user`, team mode), transforms, compactions, savings."""
        if user:
            from urllib.parse import quote

            return self._call("GET", f"state?user={quote(user)}")
        return self._call("GET", "state")

    def set_mcp(self, server: str, enabled: bool, user: str | None = None) -> dict[str, Any]:
        """Switch an MCP server (for one team user); the answer carries the re-processing estimate."""
        return self._call("POST", "mcp", _with_user({"server": server, "enabled": enabled}, user))

    def set_transform(self, name: str, enabled: bool) -> dict[str, Any]:
        """Switch a transform at runtime; the answer says whether the next request re-processes."""
        return self._call("POST", "transforms", {"name": name, "enabled": enabled})

    def compact(
        self,
        session: str | None,
        keep_turns: int,
        timeout: float = 600.0,
        user: str | None = None,
        focus: str = "",
    ) -> dict[str, Any]:
        """Compact a session (None: the user's latest) keeping `keep_turns` recent turns, aimed at `focus`."""
        payload = _with_user({"session": session, "keep_turns": keep_turns}, user)
        if focus:
            payload["focus"] = focus
        return self._call("POST", "compact", payload, timeout)

    def undo_compaction(self, session: str | None, user: str | None = None) -> dict[str, Any]:
        """Drop a session's compaction (None: the user's newest)."""
        return self._call("POST", "compact/undo", _with_user({"session": session}, user))

    def metrics(self) -> str:
        """GET metrics, in the Prometheus text format."""
        url = self.base_url + CONTROL_PREFIX + "metrics"
        import httpx

        try:
            response = self._client().get(url, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise ControlError(f"the proxy does not answer at {url} ({type(exc).__name__})") from exc
        if response.status_code != 200:
            raise ControlError(f"HTTP {response.status_code}", response.status_code)
        return str(response.text)
