"""The upstream connection pool: a pooled connection the upstream already closed is never reused."""

from __future__ import annotations

import select
from typing import Any

import aiohttp


class LivePoolConnector(aiohttp.TCPConnector):
    """A connection pool that never hands out a pooled connection the upstream has already closed.

    llama-server closes the connection after a streamed reply; its FIN can still be unread when the
    next request takes the connection from the pool. A readable idle socket (EOF or stray bytes) is
    dropped before anything is written on it. The proxy itself never sends a request twice: when the
    upstream closes without answering, aiohttp retries an idempotent method once (RFC 9112 §9.3.1.1)
    and a POST, which the upstream may have received in full, is answered 502.
    """

    peer_closed = 0

    async def _get(self, *args: Any, **kwargs: Any) -> Any:
        while True:
            conn = await super()._get(*args, **kwargs)
            if conn is None or not _readable(conn.transport):
                return conn
            self.peer_closed += 1
            conn.close()


def _readable(transport: Any) -> bool:
    """Whether an idle connection has something to read (the peer closed it, or sent bytes unasked)."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))
