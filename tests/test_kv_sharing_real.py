"""What a slot really gets with -np 2, with and without unified KV: read from the real server, not the flags.

`-c 4096 -np 2 -kvu`: both slots may use 4,096 tokens of one shared pool; `-no-kvu`: 2,048 each. The
configured flags never reach the code under test: the settings name only the URL and the log file.
"""

from __future__ import annotations

import pytest
from support.llama import RunningServer, StartServer
from test_doctor import by_check, settings

from tui.core.doctor import diagnose
from tui.core.feed.updates import FeedInfo
from tui.core.logs.facts import FactsTracker
from tui.core.logs.parse import parse_text
from tui.core.logs.state import ServerFacts
from tui.core.poll.kv_sharing import UNKNOWN_WHY, kv_sharing
from tui.core.poll.server_poller import ServerPoller
from tui.core.poll.snapshots import ServerSnapshot
from tui.ui.widgets.memory_panel import MemoryPanel
from tui.ui.widgets.server_header import ServerHeader

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]

CASES = {
    "unified": (["-kvu"], "shared", 4096, 4096),
    "split": (["-no-kvu"], "split", 2048, 4096),
}


def log_facts(server: RunningServer) -> ServerFacts:
    server.wait_for_log("n_ctx_slot")
    tracker = FactsTracker()
    tracker.feed_many(parse_text(server.log_text()))
    return tracker.facts


async def poll(server: RunningServer) -> ServerSnapshot:
    poller = ServerPoller(server.url)
    try:
        return await poller.poll_once()
    finally:
        await poller.aclose()


async def rendered(snapshot: ServerSnapshot, facts: ServerFacts) -> tuple[str, str]:
    """The header's and the KV panel's text for this server, as the dashboard draws them."""
    from textual.app import App, ComposeResult

    class Panels(App[None]):
        def compose(self) -> ComposeResult:
            yield ServerHeader(FeedInfo(mode="live", proxy_address="127.0.0.1:1"), id="h")
            yield MemoryPanel(id="m")

    app = Panels()
    async with app.run_test(size=(160, 10)) as pilot:
        header, panel = app.query_one(ServerHeader), app.query_one(MemoryPanel)
        header.show(server=snapshot, facts=facts)
        panel.show(server=snapshot, facts=facts)
        await pilot.pause()
        return header.render().plain, panel.render().plain


@pytest.mark.parametrize("case", list(CASES))
async def test_two_slots_with_and_without_unified_kv(llama_server: StartServer, case: str) -> None:
    flags, mode, per_slot, pool = CASES[case]
    server = llama_server(ctx_size=4096, parallel=2, extra_args=flags)
    facts = log_facts(server)
    snapshot = await poll(server)
    assert snapshot.n_slots == 2 and snapshot.n_ctx_slot == per_slot  # /props and /slots
    sharing = kv_sharing(facts, snapshot)
    assert (sharing.mode, sharing.n_slots, sharing.per_slot, sharing.pool) == (mode, 2, per_slot, pool)

    header, panel = await rendered(snapshot, facts)
    if mode == "shared":
        assert f"2×{per_slot:,} ctx shared" in header
        assert "pool 0% of 4.1k shared" in panel
    else:
        assert f"2×{per_slot:,} ctx each" in header
        assert "split: 2.0k per slot" in panel

    cfg = settings({"url": server.url, "log_file": str(server.log_path)}, {"client": "opencode"})
    _, results = await diagnose(cfg)
    check = by_check(results)["slot_split"]
    if mode == "shared":
        assert check.status == "pass" and "2 slots share one unified KV pool of 4,096 cells" in check.message
    else:
        assert check.status == "warn" and "each request gets 2,048 tokens at most" in check.message


async def test_without_the_log_sharing_is_unknown_not_guessed(llama_server: StartServer) -> None:
    """-np 2 -kvu, but no log to read: the doctor and panels say unknown, whatever the config's flags say."""
    server = llama_server(ctx_size=4096, parallel=2, extra_args=["-kvu"])
    snapshot = await poll(server)
    sharing = kv_sharing(ServerFacts(), snapshot)
    assert sharing.mode == "unknown" and sharing.describe() == UNKNOWN_WHY
    header, panel = await rendered(snapshot, ServerFacts())
    assert "2×4,096 ctx" in header and "shared" not in header and "each" not in header
    assert "pool sharing unknown" in panel
    cfg = settings({"url": server.url, "parallel": 2, "kv_unified": False}, {"client": "opencode"})
    _, results = await diagnose(cfg)
    check = by_check(results)["slot_split"]
    assert check.status == "skip" and UNKNOWN_WHY in check.message
