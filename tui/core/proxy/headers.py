"""Which headers cross the proxy, and redaction of secrets before anything is stored."""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict

# RFC 9110 §7.6.1 connection-specific headers, plus ones the proxy recomputes itself.
HOP_BY_HOP: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "expect",
    }
)
# Headers aiohttp's client would add on its own: suppressed when the client did not send them.
CLIENT_AUTO_HEADERS: tuple[str, ...] = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


def _connection_listed(headers: Iterable[tuple[str, str]]) -> set[str]:
    listed: set[str] = set()
    for name, value in headers:
        if name.lower() == "connection":
            listed.update(part.strip().lower() for part in value.split(",") if part.strip())
    return listed


def forwardable(headers: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
    """Copy end-to-end headers (duplicates and order kept), dropping hop-by-hop ones."""
    items = list(headers)
    drop = HOP_BY_HOP | _connection_listed(items)
    return CIMultiDict((name, value) for name, value in items if name.lower() not in drop)


def auto_headers_to_skip(sent: CIMultiDict[str]) -> list[str]:
    """Auto headers the client did not send, so the upstream sees exactly what the client sent."""
    return [name for name in CLIENT_AUTO_HEADERS if name not in sent]
