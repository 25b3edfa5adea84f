"""Where a `--connect` client reaches `ctxbudget serve`: base URL, token and TLS trust."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tui.core.config import ConfigError

TOKEN_ENV = "CTXBUDGET_TOKEN"
TLS_CA_ENV = "CTXBUDGET_TLS_CA"
PREFIX = "/_ctxbudget/"


class TokenRefused(RuntimeError):
    """The server answered 401: the token is missing or wrong (retrying will not help)."""


def token_refused(url: str) -> str:
    """The one-line error for a 401."""
    return (
        f"token refused by {url}: set {TOKEN_ENV} to the value `ctxbudget serve --show-token` "
        "prints on the server"
    )


@dataclass(frozen=True)
class RemoteTarget:
    """A `serve` base URL with the token and CA bundle to use (the token is never printed)."""

    url: str
    token: str = ""
    tls_ca: str = ""

    @property
    def where(self) -> str:
        """host:port of the serve URL (what the header shows)."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname or ""
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def endpoint(self, path: str) -> str:
        """Full URL of /_ctxbudget/<path>."""
        return self.url + PREFIX + path

    def headers(self) -> dict[str, str]:
        """The bearer header (none without a token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def verify(self) -> Any:
        """httpx's verify: the --tls-ca bundle, else the system store."""
        if not self.tls_ca:
            return True
        import ssl

        return ssl.create_default_context(cafile=self.tls_ca)


def remote_target(url: str, *, token_file: str | None = None, tls_ca: str | None = None) -> RemoteTarget:
    """The target from --connect, --token-file or CTXBUDGET_TOKEN, --tls-ca or CTXBUDGET_TLS_CA."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"--connect {url}: give the serve URL, e.g. http://gpu-box:8788 or https://gpu-box:8788"
        )
    if token_file:
        path = Path(token_file).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"--token-file {path}: cannot read it ({exc.strerror}); copy the serve token there"
            ) from None
        if not token:
            raise ConfigError(
                f"--token-file {path}: the file is empty; put `ctxbudget serve --show-token`'s output there"
            )
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    ca = tls_ca if tls_ca is not None else os.environ.get(TLS_CA_ENV, "")
    if ca:
        ca_path = Path(ca).expanduser()
        if not ca_path.is_file():
            raise ConfigError(
                f"--tls-ca {ca_path}: no such file; give the CA certificate that signed serve's --tls-cert"
            )
        ca = str(ca_path)
    return RemoteTarget(url.rstrip("/"), token, ca)
