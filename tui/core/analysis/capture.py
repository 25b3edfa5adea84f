"""A bounded copy of one request/response, filled on the hot path and turned into an Exchange later."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from tui.core.anatomy.exchange import Exchange
from tui.core.redact import redact, redact_query, redact_text
from tui.core.transforms.model import TextEdit

DEFAULT_CAPTURE_LIMIT = 32 * 1024 * 1024


@dataclass(frozen=True)
class RewriteNote:
    """What the hook did to one request; travels with the capture so the worker can count the tokens.

    `edits` holds, for each transform that changed the body (in run order), the texts it rewrote: with
    the forwarded body, that is all the worker needs to count each transform's savings.
    """

    dialect: str
    transforms: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    edits: tuple[tuple[str, tuple[TextEdit, ...]], ...] = ()
    mcp_removed: tuple[dict[str, Any], ...] = ()
    compaction_saved: int | None = None
    error: str | None = None
    # The messages the compaction folded, as the client sent them (a reference to the compaction's text).
    compaction_folded: str | None = None

    @property
    def rewritten(self) -> bool:
        """Whether the forwarded body differs from the client's."""
        return bool(self.changed or self.mcp_removed or self.compaction_saved is not None)

    @property
    def edit_chars(self) -> int:
        """Characters the edits hold (for backlog accounting)."""
        return sum(len(e.before) + len(e.after) for _, edits in self.edits for e in edits)


class Capture:
    """Raw bytes and timings of one exchange; only appends happen on the event loop."""

    __slots__ = (
        "method", "path", "request_headers", "request_body", "status", "response_headers",
        "chunks", "captured", "response_bytes", "limit", "truncated", "started", "ttfb_ms",
        "total_ms", "error", "request_bytes", "dropped", "rewrite", "user", "flight", "announce",
    )

    def __init__(
        self,
        method: str,
        path: str,
        request_headers: list[tuple[str, str]],
        request_body: bytes,
        started: float,
        limit: int = DEFAULT_CAPTURE_LIMIT,
        user: str = "",
    ) -> None:
        self.method = method
        self.path = path
        self.request_headers = request_headers
        self.request_bytes = len(request_body)
        self.truncated = len(request_body) > limit
        self.request_body = request_body[:limit] if self.truncated else request_body
        self.status = 0
        self.response_headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.captured = 0
        self.response_bytes = 0
        self.limit = limit
        self.started = started
        self.ttfb_ms: float | None = None
        self.total_ms: float | None = None
        self.error: str | None = None
        self.dropped: str | None = None
        self.rewrite: RewriteNote | None = None
        self.user = user  # team mode: who sent it ("" single user, "unknown" an unmatched key)
        # Names the request's provisional row: an announcement journals it, the final capture replaces it.
        self.flight: str | None = None
        self.announce = False

    def announcement(self, flight: str) -> Capture:
        """A copy of the request half, journaled at once as the provisional (in-flight) row."""
        self.flight = flight
        copy = Capture(self.method, self.path, list(self.request_headers), b"", self.started, self.limit)
        copy.request_body = self.request_body  # shared, never mutated (drop_bodies rebinds)
        copy.request_bytes = self.request_bytes
        copy.truncated = self.truncated
        copy.flight = flight
        copy.announce = True
        copy.user = self.user
        return copy

    def add_chunk(self, chunk: bytes) -> None:
        """Keep a response chunk while under the cap; count every byte."""
        self.response_bytes += len(chunk)
        room = self.limit - self.captured
        if room <= 0:
            self.truncated = True
            return
        if len(chunk) > room:
            chunk = chunk[:room]
            self.truncated = True
        self.chunks.append(chunk)
        self.captured += len(chunk)

    @property
    def approx_size(self) -> int:
        """Bytes held in memory (for backlog accounting; an announcement shares its request's body)."""
        if getattr(self, "announce", False):
            return 0
        extra = self.rewrite.edit_chars if self.rewrite is not None else 0
        return len(self.request_body) + self.captured + extra

    def to_exchange(self) -> Exchange:
        """The analyzer's input: chunks joined; headers, query and error redacted (run it off the loop)."""
        return Exchange(
            method=self.method,
            path=redact_query(self.path),
            request_headers=redact(self.request_headers),
            request_body=self.request_body,
            status=self.status,
            response_headers=redact(self.response_headers),
            response_body=b"".join(self.chunks),
            started=self.started,
            ttfb_ms=self.ttfb_ms,
            total_ms=self.total_ms,
            error=redact_text(self.error) if self.error else self.error,
            body_truncated=self.truncated,
        )

    def drop_bodies(self, reason: str) -> None:
        """Free the copied bytes (when the analysis backlog is too large)."""
        self.request_body = b""
        self.chunks = []
        self.captured = 0
        self.dropped = reason
        if self.rewrite is not None and self.rewrite.edits:
            self.rewrite = dataclasses.replace(self.rewrite, edits=())
