"""The proxy's own polls of llama-server (the dashboard's poller), feeding its metrics and compaction."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tui.core.proxy.service import ProxyService


async def watch_server(service: ProxyService) -> None:
    """Poll [server] url until cancelled, handing each snapshot to `service.observe_server`."""
    from tui.core.poll.server_poller import ServerPoller

    server = service.settings.server
    poller = ServerPoller(server.url, server.api_key, interval=server.poll_interval)
    await asyncio.to_thread(poller.open_client)  # loads TLS certificates off the loop
    try:
        await poller.run(service.observe_server)
    finally:
        poller.stop()
        await poller.aclose()


async def serve_until(service: ProxyService, stop: asyncio.Event, *, poll: bool = True) -> None:
    """Run a started service until `stop` is set, then stop it; `poll`: poll its server meanwhile
    (False when a dashboard already polls it and passes each snapshot on)."""
    poller = asyncio.create_task(watch_server(service), name="proxy-server-poller") if poll else None
    try:
        await stop.wait()
    finally:
        if poller is not None:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
        await service.stop()
