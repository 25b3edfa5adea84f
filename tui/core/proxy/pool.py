"""The upstream connection pool: a pooled connection the upstream already closed is never reused."""

from __future__ import annotations

import asyncio
import select
from typing import Any

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.connector import Connection
from yarl import URL

# Connect timeout of a spare connection (the proxy's own requests use the session's).
SPARE_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10.0)


class LivePoolConnector(aiohttp.TCPConnector):
    """A connection pool that never hands out a pooled connection the upstream has already closed.

    llama-server closes the connection after a streamed reply; its FIN can still be unread when the
    next request takes the connection from the pool. A readable idle socket (EOF or stray bytes) is
    dropped before anything is written on it. The proxy itself never sends a request twice: when the
    upstream closes without answering, aiohttp retries an idempotent method once (RFC 9112 §9.3.1.1)
    and a POST, which the upstream may have received in full, is answered 502.

    A connection retired after its reply (`retire`: a stream) is replaced by a spare opened in the
    background once it is let go, so the next request does not pay the connect on its way to the first
    byte (a request that finds the spare still connecting waits for it rather than opening another).
    Not while the reply runs: that connect would land between its head and its first chunk. At most
    one spare per upstream, plain HTTP only; an idle spare is closed after the pool's keep-alive
    timeout like any pooled connection.
    """

    peer_closed = 0
    spares_opened = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._retired: dict[Any, ConnectionKey] = {}  # protocol -> its pool key
        self._spares: dict[ConnectionKey, asyncio.Task[None]] = {}

    def retire(self, connection: Connection | None) -> None:
        """Close this connection after its reply (the upstream will); open a spare to replace it."""
        if connection is None or connection.protocol is None:
            return
        connection.protocol.force_close()
        key: ConnectionKey = connection._key  # the pool key (no public getter)
        if not key.is_ssl and key.proxy is None:
            self._retired[connection.protocol] = key

    async def connect(self, req: Any, traces: Any, timeout: aiohttp.ClientTimeout) -> Connection:
        spare = self._spares.get(req.connection_key)
        if spare is not None and not self._conns.get(req.connection_key):
            await asyncio.wait([spare])  # it is part-way there: take it from the pool (or connect anew)
        return await super().connect(req, traces, timeout)

    async def _get(self, *args: Any, **kwargs: Any) -> Any:
        while True:
            conn = await super()._get(*args, **kwargs)
            if conn is None or not _readable(conn.transport):
                return conn
            self.peer_closed += 1
            conn.close()

    def _release(self, key: ConnectionKey, protocol: Any, *, should_close: bool = False) -> None:
        super()._release(key, protocol, should_close=should_close)
        if self._retired.pop(protocol, None) is not None and not self._closed:
            self._open_spare(key)

    def _open_spare(self, key: ConnectionKey) -> None:
        if key in self._spares or self._conns.get(key):
            return  # one spare at a time; an idle connection is already waiting
        self._spares[key] = self._loop.create_task(self._spare(key))

    async def _spare(self, key: ConnectionKey) -> None:
        if self._conns.get(key):  # a reply let one go meanwhile: taking and releasing it would
            self._spares.pop(key, None)  # restart its idle clock past the upstream's keep-alive
            return
        try:
            connection = await super().connect(_Dial(key), [], SPARE_TIMEOUT)  # type: ignore[arg-type]
        except (TimeoutError, aiohttp.ClientError, OSError):
            return  # the next request connects (and reports the failure) itself
        finally:
            self._spares.pop(key, None)
        connection.release()
        self.spares_opened += 1

    def _close(self, *, abort_ssl: bool = False) -> list[Any]:
        spares = list(self._spares.values())
        for task in spares:
            task.cancel()
        self._retired.clear()
        return [*super()._close(abort_ssl=abort_ssl), *spares]


class _Dial:
    """What the connector reads from a request to open a plain-HTTP connection for a pool key."""

    proxy = None
    proxy_auth = None
    proxy_headers = None

    def __init__(self, key: ConnectionKey) -> None:
        self.connection_key = key
        self.host = key.host
        self.port = key.port
        self.ssl = key.ssl
        self.server_hostname = key.server_hostname
        self.url = URL.build(scheme="http", host=key.host, port=key.port)

    def is_ssl(self) -> bool:
        return False


def _readable(transport: Any) -> bool:
    """Whether an idle connection has something to read (the peer closed it, or sent bytes unasked)."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))
