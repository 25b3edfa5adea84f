"""The dashboard's proxy child takes the dashboard's server polls instead of polling llama-server itself."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from aiohttp import web
from support.llama import free_port

from tui.core.config import Settings, with_overrides
from tui.core.feed.embedded import EmbeddedProxy
from tui.core.poll.snapshots import ServerSnapshot, SlotSnapshot
from tui.core.prom import METRICS_PATH


async def _counting_upstream(hits: list[str]) -> web.AppRunner:
    async def any_path(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    runner = web.AppRunner(app)
    await runner.setup()
    return runner


def test_the_child_serves_metrics_from_the_dashboards_polls_and_never_polls_itself(tmp_path: Path) -> None:
    async def run() -> None:
        hits: list[str] = []
        runner = await _counting_upstream(hits)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        upstream = f"http://127.0.0.1:{port}"
        settings = with_overrides(Settings(), "proxy", listen=f"127.0.0.1:{free_port()}", upstream=upstream)
        # A child that polled would hit the upstream many times at this interval.
        settings = with_overrides(settings, "server", url=upstream, poll_interval=0.2)
        proxy = EmbeddedProxy(settings, tmp_path / "journal.sqlite3")
        url = await proxy.start()
        try:
            snapshot = ServerSnapshot(
                ts=time.time(), state="up", url=settings.server.url, model="m", n_slots=2, n_ctx_slot=4242,
                slots=(SlotSnapshot(id=0, n_ctx=4242, is_processing=False, n_prompt_tokens=17),),
            )
            proxy.send_server(snapshot)
            async with httpx.AsyncClient() as client:
                text = ""
                for _ in range(100):
                    text = (await client.get(url + METRICS_PATH)).text
                    if "ctxbudget_server_slot_ctx_tokens 4242.0" in text:
                        break
                    await asyncio.sleep(0.05)
            assert "ctxbudget_server_slot_ctx_tokens 4242.0" in text
            assert 'ctxbudget_slot_tokens{slot="0"} 17.0' in text
            await asyncio.sleep(1.0)  # five of the child's own poll intervals
        finally:
            await proxy.stop()
            await runner.cleanup()
        assert hits == []  # llama-server was never polled by the child

    asyncio.run(run())
