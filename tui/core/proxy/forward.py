"""The hot path: forward one request upstream and stream the response back, copying bytes aside."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tui.core.analysis.capture import DEFAULT_CAPTURE_LIMIT, Capture
from tui.core.proxy.errors import dialect_for_path, error_body, sse_error_event
from tui.core.proxy.headers import auto_headers_to_skip, forwardable
from tui.core.proxy.rewrite import RequestRewriter

# Errors that mean the upstream (not the client) failed.
UPSTREAM_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
# Errors writing to the client: it went away (aiohttp raises ClientConnectionResetError here too).
CLIENT_GONE_ERRORS = (ConnectionError, aiohttp.ClientConnectionError)
# A pooled keep-alive connection the upstream had already closed: nothing was answered, so the
# (fully buffered) request is sent once more on a fresh connection.
STALE_CONNECTION_ERRORS = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)


@dataclass
class ForwardStats:
    """Counters the control API reports."""

    requests: int = 0
    in_flight: int = 0
    upstream_errors: int = 0
    client_gone: int = 0
    retries: int = 0


class Forwarder:
    """Forwards any method and path unchanged; hands each finished Capture to `sink`."""

    def __init__(
        self,
        upstream: str,
        session: aiohttp.ClientSession,
        sink: Callable[[Capture], None],
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
        rewriter: RequestRewriter | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.session = session
        self.sink = sink
        self.capture_limit = capture_limit
        self.rewriter = rewriter
        self.stats = ForwardStats()
        # Learned, not assumed: llama-server closes the connection after every stream, a fast upstream
        # keeps it. Once a stale pooled connection is seen, streamed replies' connections are dropped.
        self.close_after_stream = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward one request; never raises for upstream failures (answers 502 instead)."""
        started = time.time()
        t0 = time.perf_counter()
        raw_path = request.raw_path
        body = await request.read()
        note = None
        if self.rewriter is not None:
            body, note = self.rewriter.process(request.method, raw_path, request.headers, body)
        capture = Capture(
            request.method, raw_path, list(request.headers.items()), body, started, self.capture_limit
        )
        capture.rewrite = note
        self.stats.requests += 1
        self.stats.in_flight += 1
        upstream: aiohttp.ClientResponse | None = None
        clean = False
        try:
            upstream, response = await self._open(request, body, capture)
            if response is not None:
                clean = True
                return response
            assert upstream is not None
            response = await self._relay(request, upstream, capture, t0)
            clean = capture.error is None
            return response
        except asyncio.CancelledError:
            self._client_gone(capture)
            raise
        finally:
            if upstream is not None:
                if clean:
                    upstream.release()
                else:
                    upstream.close()  # drop the connection so llama-server cancels the task
            capture.total_ms = (time.perf_counter() - t0) * 1000.0
            self.stats.in_flight -= 1
            self.sink(capture)

    async def _open(
        self, request: web.Request, body: bytes, capture: Capture
    ) -> tuple[aiohttp.ClientResponse | None, web.StreamResponse | None]:
        headers = forwardable(request.headers.items())
        framed = "Content-Length" in request.headers or "Transfer-Encoding" in request.headers
        send_body = bool(body) or framed
        url = URL(self.upstream + capture.path, encoded=True)
        try:
            try:
                upstream = await self._send(request.method, url, headers, body if send_body else None)
            except STALE_CONNECTION_ERRORS as exc:
                if isinstance(exc, aiohttp.ClientConnectorError):
                    raise  # could not connect at all: a retry would only double the wait
                self.stats.retries += 1
                self.close_after_stream = True
                upstream = await self._send(request.method, url, headers, body if send_body else None)
        except UPSTREAM_ERRORS as exc:
            self.stats.upstream_errors += 1
            message = f"ctxbudget proxy: upstream {self.upstream} unreachable: {_describe(exc)}"
            capture.error = message
            capture.status = 502
            status_body = error_body(dialect_for_path(capture.path), message)
            capture.add_chunk(status_body)
            return None, web.Response(status=502, body=status_body, content_type="application/json")
        if self.close_after_stream and upstream.headers.get("Content-Type", "").startswith(
            "text/event-stream"
        ):
            # This upstream closes the connection after a stream; never hand it back to the pool.
            connection = upstream.connection
            if connection is not None and connection.protocol is not None:
                connection.protocol.force_close()
        return upstream, None

    async def _send(
        self, method: str, url: URL, headers: CIMultiDict[str], data: bytes | None
    ) -> aiohttp.ClientResponse:
        return await self.session.request(
            method,
            url,
            headers=headers,
            data=data,
            skip_auto_headers=auto_headers_to_skip(headers),
            allow_redirects=False,
        )

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, capture: Capture, t0: float
    ) -> web.StreamResponse:
        capture.status = upstream.status
        capture.response_headers = list(upstream.headers.items())
        response = web.StreamResponse(
            status=upstream.status, reason=upstream.reason, headers=forwardable(upstream.headers.items())
        )
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        try:
            await response.prepare(request)
        except CLIENT_GONE_ERRORS:
            self._client_gone(capture)
            return response
        first = True
        content = upstream.content
        while True:
            try:
                chunk = await content.readany()
            except UPSTREAM_ERRORS as exc:
                await self._upstream_failed(request, response, upstream, capture, exc)
                return response
            if not chunk:
                break
            if first:
                capture.ttfb_ms = (time.perf_counter() - t0) * 1000.0
                first = False
            capture.add_chunk(chunk)
            try:
                await response.write(chunk)
            except CLIENT_GONE_ERRORS:
                self._client_gone(capture)
                return response
        if first:
            capture.ttfb_ms = (time.perf_counter() - t0) * 1000.0
        try:
            await response.write_eof()
        except CLIENT_GONE_ERRORS:
            self._client_gone(capture)
        return response

    def _client_gone(self, capture: Capture) -> None:
        capture.error = capture.error or "client disconnected"
        self.stats.client_gone += 1

    async def _upstream_failed(
        self,
        request: web.Request,
        response: web.StreamResponse,
        upstream: aiohttp.ClientResponse,
        capture: Capture,
        exc: BaseException,
    ) -> None:
        self.stats.upstream_errors += 1
        message = f"ctxbudget proxy: upstream {self.upstream} failed mid-response: {_describe(exc)}"
        capture.error = message
        is_sse = upstream.headers.get("Content-Type", "").startswith("text/event-stream")
        if is_sse and response.content_length is None:
            event = sse_error_event(dialect_for_path(capture.path), message)
            capture.add_chunk(event)
            try:
                await response.write(event)
                await response.write_eof()
                return
            except CLIENT_GONE_ERRORS:
                pass
        # Not SSE (or cannot append): cut the connection so the client sees an incomplete body.
        if request.transport is not None:
            request.transport.close()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
