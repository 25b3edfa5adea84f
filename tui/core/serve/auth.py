"""The serve token: created once into a private file, checked in constant time on every request."""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from tui.core.config import ConfigError, serve_token_path
from tui.core.control.api import from_browser_page, host_names_this_machine

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def token_path() -> Path:
    """`<config dir>/serve-token` (config.serve_token_path: the proxy's key gate reads the same file)."""
    return serve_token_path()


def load_or_create_token(path: Path | None = None) -> str:
    """The token in `path`, made on first use (dir 0700, file 0600); a file others can read is refused."""
    path = path or token_path()
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token


def _read_token(path: Path) -> str:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(
            f"{path}: the serve token is readable by others (mode {mode:o}); run `chmod 600 {path}`"
        )
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 16:
        raise ConfigError(f"{path}: the serve token is empty or too short; delete the file to make a new one")
    return token


def token_matches(given: str, expected: str) -> bool:
    """Constant-time comparison (the time does not tell how much of a guess was right)."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def unauthorized(message: str) -> web.Response:
    """The only answer a request without the right token gets."""
    return web.json_response({"error": {"type": "unauthorized", "message": message}}, status=401)


def bearer(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer ...` header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def auth_middleware(
    token: str, *, required: bool, listen_host: str
) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Check the bearer token; without `required` (a loopback listen) a request may come without one.

    A tokenless request must then name this machine in its Host header and not come from a web page,
    so neither a DNS-rebinding page nor any page in the user's browser can read the feed or restart the
    server.
    """

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = bearer(request)
        if given is None:
            if required:
                return unauthorized("this ctxbudget serve needs its token (Authorization: Bearer ...)")
            if not host_names_this_machine(request.headers.get("Host"), listen_host, None):
                return unauthorized("a request without the token must come with Host: localhost")
            if from_browser_page(request.headers):  # a page on this machine must not restart the server
                return unauthorized("a request without the token must not come from a web page")
        elif not token_matches(given, token):
            return unauthorized("wrong token")
        return await handler(request)

    return check
