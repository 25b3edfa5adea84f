"""One forwarded request/response pair as the proxy saw it (input to the analyzer and the journal)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Exchange:
    """A request and its response, with headers already redacted and timings in ms."""

    method: str
    path: str  # with query string, e.g. "/v1/messages?beta=true"
    request_headers: dict[str, str] = field(default_factory=dict)
    request_body: bytes = b""
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""
    started: float = 0.0  # epoch seconds
    ttfb_ms: float | None = None
    total_ms: float | None = None
    error: str | None = None  # upstream failure / client gone
    body_truncated: bool = False
