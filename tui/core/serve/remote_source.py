"""The CLI's view of a remote `ctxbudget serve`: rows, records, status, doctor and a control client."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tui.core.config import ConfigError
from tui.core.records import RequestRecord

ROWS_PAGE = 1000
TIMEOUT_S = 30.0
ACTION_TIMEOUT_S = 900.0  # a restart waits for the model to load


class RemoteError(RuntimeError):
    """serve refused or did not answer (the message says which and what to do)."""


class TokenRefused(RemoteError):
    """serve answered 401: the token is missing or wrong (retrying does not help)."""


def token_refused(url: str) -> str:
    """The one-line error for a 401."""
    return (
        f"token refused by {url}: set CTXBUDGET_TOKEN (or --token-file) to the value "
        "`ctxbudget serve --show-token` prints on the server"
    )


def check_url(url: str) -> str:
    """A serve base URL without the trailing slash; bad ones are a usage error."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--connect {url!r}: give the serve URL, e.g. https://gpu-box:8788")
    return url.rstrip("/")


class RemoteSource:
    """Synchronous calls to one serve (token and CA as `--connect` was given them)."""

    def __init__(self, url: str, token: str = "", ca: Path | None = None) -> None:
        self.url = check_url(url)
        self.token = token
        # An SSLContext: httpx deprecates a CA path given as verify=str.
        self.verify: Any = ssl.create_default_context(cafile=str(ca)) if ca else True
        self._http: Any = None

    def _client(self) -> Any:
        if self._http is None:
            import httpx

            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._http = httpx.Client(
                base_url=self.url, headers=headers, verify=self.verify, timeout=TIMEOUT_S, trust_env=False
            )
        return self._http

    def close(self) -> None:
        """Close the pooled connection."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def _get(self, path: str, **params: Any) -> Any:
        import httpx

        try:
            response = self._client().get("/_ctxbudget/" + path, params=params or None)
        except httpx.HTTPError as exc:
            raise RemoteError(
                f"ctxbudget serve does not answer at {self.url} ({type(exc).__name__}: {exc})"
            ) from exc
        if response.status_code == 401:
            raise TokenRefused(token_refused(self.url))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RemoteError(f"{self.url}/_ctxbudget/{path} answered HTTP {response.status_code}")
        return response.json()

    # --- what the commands need ------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """GET info."""
        return dict(self._get("info"))

    def latest(self, n: int) -> list[RequestRecord]:
        """The newest n rows, oldest first."""
        from tui.core.feed.codec import record_from_json

        if n <= 0:
            return []
        data = self._get("rows", last=min(n, ROWS_PAGE))
        return [record_from_json(r) for r in data["records"]]

    def rows(self, after: int = 0) -> Iterator[RequestRecord]:
        """Every row with id > after, oldest first, a page at a time."""
        from tui.core.feed.codec import record_from_json

        while True:
            data = self._get("rows", after=after, limit=ROWS_PAGE)
            records = [record_from_json(r) for r in data["records"]]
            yield from records
            if len(records) < ROWS_PAGE:
                return
            after = records[-1].id

    def record(self, record_id: int) -> RequestRecord | None:
        """One record with its anatomy parts."""
        from tui.core.feed.codec import record_from_json

        data = self._get(f"records/{record_id}")
        return None if data is None else record_from_json(data)

    def body(self, record_id: int) -> bytes | None:
        """The stored request body bytes (None: not kept)."""
        import httpx

        try:
            response = self._client().get(f"/_ctxbudget/records/{record_id}/body")
        except httpx.HTTPError as exc:
            raise RemoteError(
                f"ctxbudget serve does not answer at {self.url} ({type(exc).__name__})"
            ) from exc
        if response.status_code == 401:
            raise TokenRefused(token_refused(self.url))
        return bytes(response.content) if response.status_code == 200 else None

    def server_status(self) -> dict[str, Any]:
        """GET server: the ServerStatus JSON."""
        return dict(self._get("server"))

    def doctor(self) -> dict[str, Any]:
        """GET doctor: {"results", "text"}."""
        return dict(self._get("doctor"))

    def server_action(
        self, action: str, payload: dict[str, Any], on_step: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """POST server/ACTION; each step goes to on_step; the last line (final state or refusal)."""
        import httpx

        last: dict[str, Any] = {}
        try:
            with self._client().stream(
                "POST", f"/_ctxbudget/server/{action}", json=payload, timeout=ACTION_TIMEOUT_S
            ) as response:
                if response.status_code == 401:
                    raise TokenRefused(token_refused(self.url))
                if response.status_code != 200:
                    response.read()
                    raise RemoteError(
                        f"{self.url} answered HTTP {response.status_code}: {response.text[:300]}"
                    )
                for line in response.iter_lines():
                    if line:
                        last = json.loads(line)
                        on_step(last)
        except httpx.HTTPError as exc:
            raise RemoteError(
                f"ctxbudget serve does not answer at {self.url} ({type(exc).__name__})"
            ) from exc
        return last

    def control_client(self) -> Any:
        """A ControlClient whose calls serve forwards to its proxy."""
        from tui.core.control.client import ControlClient

        return ControlClient(self.url, token=self.token, verify=self.verify)
