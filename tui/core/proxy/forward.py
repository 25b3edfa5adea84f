"""The hot path: forward one request upstream and stream the response back, copying bytes aside."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tui.core.analysis.capture import DEFAULT_CAPTURE_LIMIT, Capture
from tui.core.config import UNKNOWN_USER
from tui.core.proxy import header_bytes
from tui.core.proxy.errors import dialect_for_path, error_body, sse_error_event
from tui.core.proxy.headers import auto_headers_to_skip, forwardable
from tui.core.proxy.pool import LivePoolConnector
from tui.core.proxy.rewrite import RequestRewriter
from tui.core.redact import redact_text
from tui.core.team.gate import KEY_HEADERS, KeyGate

# Errors that mean the upstream (not the client) failed.
UPSTREAM_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)
# Errors writing to the client: it went away (aiohttp raises ClientConnectionResetError here too).
CLIENT_GONE_ERRORS = (ConnectionError, aiohttp.ClientConnectionError)
# A request still running this long after it was forwarded gets its in-flight row: quick requests
# (most of them) cost the analysis worker nothing extra, and a long prefill shows almost at once.
ANNOUNCE_AFTER_S = 0.5
# Seconds allowed between two chunks of a request body ([proxy] body_timeout).
DEFAULT_BODY_TIMEOUT = 60.0


@dataclass
class ForwardStats:
    """Counters the control API reports."""

    requests: int = 0
    in_flight: int = 0
    upstream_errors: int = 0
    client_gone: int = 0
    bad_requests: int = 0
    unauthorized: int = 0


class Forwarder:
    """Forwards any method and path unchanged; hands each finished Capture to `sink`."""

    def __init__(
        self,
        upstream: str,
        session: aiohttp.ClientSession,
        sink: Callable[[Capture], None],
        capture_limit: int = DEFAULT_CAPTURE_LIMIT,
        rewriter: RequestRewriter | None = None,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        gate: KeyGate | None = None,
        upstream_key: str = "",
    ) -> None:
        header_bytes.install()
        base = URL(upstream.rstrip("/"))
        # Credentials in [proxy] upstream become a header; the URL used (and shown in errors) has none.
        self.upstream_auth: str | None = None
        if base.user is not None or base.password is not None:
            pair = f"{base.user or ''}:{base.password or ''}".encode()
            self.upstream_auth = "Basic " + base64.b64encode(pair).decode("ascii")
            base = base.with_user(None)
        self.upstream = str(base).rstrip("/")
        self.session = session
        self.body_timeout = body_timeout
        self.sink = sink
        self.capture_limit = capture_limit
        self.rewriter = rewriter
        self.gate = gate
        # Sent instead of the agent's key when the gate identifies users ([server] api_key).
        self.upstream_key = upstream_key
        self.stats = ForwardStats()
        # Flight names are unique across proxy runs and name this process (a dead one's rows are swept).
        self._flight_prefix = f"{os.getpid()}-{time.time_ns()}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward one request; never raises for upstream failures (answers 502 instead)."""
        started = time.time()
        t0 = time.perf_counter()
        raw_path = request.raw_path
        user = self.gate.identify(request.headers) if self.gate is not None else ""
        if user is None:
            self.stats.unauthorized += 1
            message = (
                "ctxbudget proxy: unknown or missing key; ask the proxy's operator for one "
                "(`ctxbudget team add NAME`) and send it as the API key"
            )
            return await self._answer_locally(request, started, 401, message, UNKNOWN_USER)
        # Decided once per request: a team file changing mid-request must not let its key through.
        replace_auth = self.gate is not None and self.gate.active
        problem = self._refuse(request, replace_auth)
        if problem is not None:
            return await self._answer_locally(request, started, *problem, user)
        try:
            body, rest = await self._read_body(request)
        except TimeoutError:
            message = (
                f"ctxbudget proxy: no request body bytes for {self.body_timeout:g} s ([proxy] body_timeout)"
            )
            return await self._answer_locally(request, started, 408, message)
        # A compressed body is forwarded and captured as received: the analysis worker decompresses
        # its copy by the Content-Encoding header; it is never rewritten.
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        note = None
        if self.rewriter is not None and rest is None and encoding == "identity":
            body, note = self.rewriter.process(request.method, raw_path, request.headers, body, user)
        capture = Capture(
            request.method, raw_path, list(request.headers.items()), body, started, self.capture_limit, user
        )
        capture.rewrite = note
        announce: asyncio.TimerHandle | None = None
        if request.method == "POST":  # model calls still running after a moment get their in-flight row
            flight = f"{self._flight_prefix}-{self.stats.requests}"
            loop = asyncio.get_running_loop()
            announce = loop.call_later(ANNOUNCE_AFTER_S, self._announce, capture, flight)
        self.stats.requests += 1
        self.stats.in_flight += 1
        upstream: aiohttp.ClientResponse | None = None
        clean = False
        try:
            upstream, response = await self._open(request, body, rest, capture, replace_auth)
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
            if announce is not None:
                announce.cancel()
            if upstream is not None:
                if clean:
                    upstream.release()
                else:
                    upstream.close()  # drop the connection so llama-server cancels the task
            capture.total_ms = (time.perf_counter() - t0) * 1000.0
            self.stats.in_flight -= 1
            self.sink(capture)

    def _announce(self, capture: Capture, flight: str) -> None:
        """The request's in-flight row (analysed off the loop like every capture)."""
        self.sink(capture.announcement(flight))

    def _refuse(self, request: web.Request, replace_auth: bool) -> tuple[int, str] | None:
        """A (status, message) for a request this proxy cannot forward as it stands, else None."""
        if not request.raw_path.startswith("/"):
            return 400, (
                "ctxbudget proxy: only origin-form request targets (/v1/messages) are forwarded, "
                f"not {_target(request.raw_path)[:200]!r}; point the client's base URL at the proxy"
            )
        if self.upstream_auth is not None and "Authorization" in request.headers and not replace_auth:
            return 502, (
                "ctxbudget proxy: [proxy] upstream carries user:password credentials and the client "
                "sent its own Authorization header; remove one of the two"
            )
        return None

    async def _answer_locally(
        self, request: web.Request, started: float, status: int, message: str, user: str = ""
    ) -> web.StreamResponse:
        """An error in the client's dialect for a request never sent upstream; journaled like any other.

        The connection is closed right after it: the rest of the request is not waited for.
        """
        self.stats.bad_requests += 1
        target = _target(request.raw_path)
        try:
            path = URL(target).raw_path
        except ValueError:
            path = ""
        capture = Capture(request.method, target, list(request.headers.items()), b"", started, user=user)
        capture.status = status
        capture.error = message
        payload = error_body(dialect_for_path(path), message, status)
        capture.add_chunk(payload)
        capture.total_ms = (time.time() - started) * 1000.0
        self.sink(capture)
        response = web.Response(status=status, body=payload, content_type="application/json")
        response.force_close()
        try:
            await response.prepare(request)
            await response.write_eof()
        except CLIENT_GONE_ERRORS:
            pass
        if request.transport is not None:
            request.transport.close()  # no lingering read of a body that may never come
        return response

    async def _read_body(self, request: web.Request) -> tuple[bytes, AsyncIterator[bytes] | None]:
        """The body as received (still compressed, if it was), buffered up to the capture limit.

        Beyond the limit the rest is not buffered: the second value streams it to the upstream.
        Raises TimeoutError when the client sends nothing for body_timeout seconds.
        """
        content = request.content
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.body_timeout) as deadline:  # idle time, renewed per chunk
            while size <= self.capture_limit:
                chunk = await content.readany()
                if not chunk:
                    return b"".join(chunks), None
                chunks.append(chunk)
                size += len(chunk)
                deadline.reschedule(loop.time() + self.body_timeout)
        return b"".join(chunks), self._rest_of_body(content)

    async def _rest_of_body(self, content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
        while True:
            async with asyncio.timeout(self.body_timeout):
                chunk = await content.readany()
            if not chunk:
                return
            yield chunk

    async def _open(
        self,
        request: web.Request,
        body: bytes,
        rest: AsyncIterator[bytes] | None,
        capture: Capture,
        replace_auth: bool = False,
    ) -> tuple[aiohttp.ClientResponse | None, web.StreamResponse | None]:
        headers = forwardable(request.headers.items())
        if replace_auth:
            # The agent's key named its user; the upstream gets the server's own key, if any.
            for name in KEY_HEADERS:
                headers.popall(name, None)
            if self.upstream_key:
                headers["Authorization"] = f"Bearer {self.upstream_key}"
        if self.upstream_auth is not None:
            headers["Authorization"] = self.upstream_auth
        data: bytes | AsyncIterator[bytes] | None
        if rest is not None:
            data = self._streamed(body, rest, capture)
            if "Content-Length" in request.headers:  # keep the client's framing (no chunking)
                headers["Content-Length"] = request.headers["Content-Length"]
        else:
            framed = "Content-Length" in request.headers or "Transfer-Encoding" in request.headers
            data = body if (body or framed) else None
        try:
            url = URL(self.upstream + capture.path, encoded=True)
            upstream = await self._send(request.method, url, headers, data)
        except (*UPSTREAM_ERRORS, ValueError) as exc:
            return None, self._failed(capture, exc)
        if upstream.headers.get("Content-Type", "").startswith("text/event-stream"):
            # llama-server closes the connection right after a stream without saying so; reusing it
            # races with its FIN, and a POST lost in that race cannot be sent again. Streams last far
            # longer than a new loopback connection takes, so a streamed reply's connection is not pooled
            # (a spare replaces it in the background, off the next request's way).
            connector = self.session.connector
            if isinstance(connector, LivePoolConnector):
                connector.retire(upstream.connection)
            elif upstream.connection is not None and upstream.connection.protocol is not None:
                upstream.connection.protocol.force_close()
        return upstream, None

    def _failed(self, capture: Capture, exc: BaseException) -> web.Response:
        """The 502 for a request the upstream did not answer (in the client's dialect)."""
        self.stats.upstream_errors += 1
        what = "unreachable" if isinstance(exc, aiohttp.ClientConnectorError) else "failed"
        message = redact_text(f"ctxbudget proxy: upstream {self.upstream} {what}: {_describe(exc)}")
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            message += " (closed the connection without answering; a POST is not sent twice)"
        capture.error = message
        capture.status = 502
        status_body = error_body(dialect_for_path(capture.path), message)
        capture.add_chunk(status_body)
        return web.Response(status=502, body=status_body, content_type="application/json")

    async def _streamed(
        self, head: bytes, rest: AsyncIterator[bytes], capture: Capture
    ) -> AsyncIterator[bytes]:
        """A body over the capture limit, passed through as it arrives (the capture keeps its head)."""
        yield head
        async for chunk in rest:
            capture.request_bytes += len(chunk)
            yield chunk

    async def _send(
        self, method: str, url: URL, headers: CIMultiDict[str], data: bytes | AsyncIterator[bytes] | None
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
        reason = _describe(exc)
        message = redact_text(f"ctxbudget proxy: upstream {self.upstream} failed mid-response: {reason}")
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


def _target(raw: str) -> str:
    """A request target as it may be shown or stored: an absolute form loses any user:password@."""
    if raw.startswith("/"):
        return raw
    try:
        return str(URL(raw, encoded=True).with_user(None))
    except ValueError:
        return "(unreadable request target)"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if type(exc).__name__ in text else f"{type(exc).__name__}: {text}"
