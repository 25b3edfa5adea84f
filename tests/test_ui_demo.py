"""Pilot tests of every key and view, driven by the shipped demo recording (replayed at once, fixed clock)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from support.notices import Notices
from textual.command import CommandPalette
from textual.widgets import ContentSwitcher, Footer, Tree

from tui.core.anatomy.model import MCP_HELPERS_SERVER
from tui.core.config import Settings
from tui.core.feed.control import ControlSnapshot
from tui.core.feed.demo import DemoDriver
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.recording import DEMO_RECORDING, load_recording
from tui.core.feed.views import budget_of
from tui.ui.app import CtxBudgetApp, make_app
from tui.ui.availability import DEMO_REASON, ActionContext
from tui.ui.keys import KEYS, unavailable_reason
from tui.ui.screens.detail import RequestDetailScreen
from tui.ui.screens.help import HelpScreen
from tui.ui.screens.main import MainScreen
from tui.ui.widgets.budget_bar import BudgetBar
from tui.ui.widgets.filter_bar import FilterBar
from tui.ui.widgets.log_pane import LogPane
from tui.ui.widgets.mcp_table import McpTable
from tui.ui.widgets.requests_table import RequestsTable
from tui.ui.widgets.server_header import ServerHeader
from tui.ui.widgets.slots_panel import SlotsPanel

CLOCK_BASE = 1_767_225_600.0
RECORDING = load_recording(DEMO_RECORDING)
RECORDED_IDS = sorted(int(e.data["id"]) for e in RECORDING.entries if e.type == "record")


def demo_app(settings: Settings | None = None, *, until: float | None = None) -> CtxBudgetApp:
    """The real app on the demo recording, replayed instantly."""
    driver = DemoDriver(RECORDING, speed=0, until=until, clock_base=CLOCK_BASE)
    return make_app(DashboardFeed(driver), settings or Settings(), tz=dt.UTC)


async def test_replay_fills_every_view() -> None:
    app = demo_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(RequestsTable)
        assert table.row_count == len(RECORDED_IDS)
        newest = max(RECORDED_IDS)
        assert table.record_at_cursor() is not None and table.record_at_cursor().id == newest  # type: ignore[union-attr]
        bar = app.screen.query_one(BudgetBar)
        assert bar.record is not None and bar.record.id == newest
        assert bar.budget is not None and bar.budget.window > 0
        header = app.screen.query_one(ServerHeader)
        assert header.server is not None and header.server.state == "up"
        assert "up" in str(header.render())
        log = app.screen.query_one(LogPane)
        log_entries = [e for e in RECORDING.entries if e.type == "log"]
        assert len(log.kept) == len(log_entries)
        slots = app.screen.query_one(SlotsPanel)
        assert slots.states and any(s.checkpoints for s in slots.states)


async def test_cursor_selects_and_follow_key_resumes() -> None:
    app = demo_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.screen.query_one(RequestsTable)
        bar = app.screen.query_one(BudgetBar)
        await pilot.press("down", "down")
        await pilot.pause()
        assert not table.following
        selected = table.record_at_cursor()
        assert selected is not None and bar.record is not None and bar.record.id == selected.id
        assert selected.id != max(RECORDED_IDS)
        assert "(selected)" in str(bar.render())
        await pilot.press("f")
        await pilot.pause()
        assert table.following and app.screen.query_one(LogPane).follow
        assert bar.record is not None and bar.record.id == max(RECORDED_IDS)
        await pilot.press("f")
        await pilot.pause()
        assert not table.following and not app.screen.query_one(LogPane).follow


async def test_pane_keys_show_and_hide_each_pane() -> None:
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, MainScreen)
        switcher = screen.query_one(ContentSwitcher)
        for key, pane, widget_id in (
            ("l", "log", "log"),
            ("s", "slots", "slots-view"),
            ("m", "mcp", "mcp-view"),
        ):
            await pilot.press(key)
            await pilot.pause()
            assert screen.pane == pane
            assert switcher.current == f"{pane}-view"
            assert screen.query_one("#pane").display
            # 80x24 is short: the pane replaces the requests table.
            assert not screen.query_one("#requests-box").region.height
            assert app.focused is not None and app.focused.id == widget_id
            await pilot.press(key)
            await pilot.pause()
            assert screen.pane == ""
            assert isinstance(app.focused, RequestsTable)


async def test_tall_screen_shows_pane_below_requests() -> None:
    app = demo_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("s")
        await pilot.pause()
        screen = app.screen
        assert screen.has_class("-tall") and screen.has_class("-wide")
        assert screen.query_one("#requests-box").region.height > 4
        assert screen.query_one("#slots-view").region.height > 4


async def test_mcp_pane_lists_servers_with_tokens_and_calls() -> None:
    app = demo_app()
    notices = Notices()
    async with app.run_test(size=(100, 40), message_hook=notices) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("m")
        await pilot.pause()
        mcp = app.screen.query_one(McpTable)
        newest = max(RECORDED_IDS)
        record = app.feed.driver.load_record(newest)
        assert record is not None and record.anatomy is not None
        servers = {t.server for t in record.anatomy.tools if t.server}
        assert {row.name for row in mcp.rows_shown} >= servers
        for row in mcp.rows_shown:
            if row.name in servers:
                expected = sum(t.tokens for t in record.anatomy.tools if t.server == row.name)
                assert row.tokens == expected
                assert row.state == ("helpers" if row.name == MCP_HELPERS_SERVER else "on")
        assert sum(row.calls for row in mcp.rows_shown) > 0
        # The toggle is shown but greyed; pressing its key explains why.
        assert mcp.check_action("toggle_server", ()) is None
        await pilot.press("space")
        await pilot.pause()
        assert any(DEMO_REASON in n.message for n in notices.shown)


async def test_filter_requests_and_log() -> None:
    app = demo_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("slash")
        bar = app.screen.query_one(FilterBar)
        assert bar.display and app.focused is bar and bar.target == "requests"
        await pilot.press(*"kind:title")
        await pilot.pause()
        table = app.screen.query_one(RequestsTable)
        titles = [e for e in RECORDING.entries if e.type == "record" and e.data["kind"] == "title"]
        assert table.row_count == len(titles) > 0
        await pilot.press("enter")
        await pilot.pause()
        assert not bar.display and isinstance(app.focused, RequestsTable)
        assert table.row_count == len(titles)
        # Log filter by level and slot.
        await pilot.press("l", "slash")
        assert bar.target == "log"
        await pilot.press(*"level:warn")
        await pilot.pause()
        log = app.screen.query_one(LogPane)
        warn_lines = [line for line in log.kept if line.level in ("W", "E")]
        assert warn_lines and len(log.lines) == len(warn_lines)
        await pilot.press("escape")
        bar.value = ""
        await pilot.press("slash")
        bar.value = "slot:0"
        await pilot.pause()
        slot_lines = [line for line in log.kept if line.slot == 0]
        assert slot_lines and len(log.lines) == len(slot_lines)


async def test_log_pane_shows_the_last_line_when_opened() -> None:
    last = [e.data for e in RECORDING.entries if e.type == "log"][-1]
    for size in ((80, 24), (120, 40)):
        app = demo_app()
        async with app.run_test(size=size) as pilot:
            await app.workers.wait_for_complete()
            await pilot.press("l")
            await pilot.pause()
            log = app.screen.query_one(LogPane)
            assert log.scroll_offset.y == log.max_scroll_y, size
            assert last.split(" I ", 1)[0] in app.export_screenshot(), size


async def test_log_follow_pauses_when_scrolled_up() -> None:
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("l")
        await pilot.pause()
        log = app.screen.query_one(LogPane)
        assert log.follow and log.at_end
        await pilot.press("pageup")
        await pilot.pause()
        assert not log.follow
        assert "paused" in str(log.border_title)
        await pilot.press("end")
        await pilot.pause()
        assert log.follow


async def test_enter_opens_detail_tree_body_and_back() -> None:
    app = demo_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RequestDetailScreen)
        newest = max(RECORDED_IDS)
        assert screen.record.id == newest
        tree = screen.query_one(Tree)
        labels = [str(node.label) for node in tree.root.children]
        assert any(label.startswith("system") for label in labels)
        assert any(label.startswith("MCP") for label in labels)
        mcp_node = next(n for n in tree.root.children if str(n.label).startswith("MCP"))
        assert mcp_node.children and mcp_node.children[0].children  # server -> tool schemas
        summary = str(screen.query_one("#detail-summary").render())
        assert "cache break" in summary
        await pilot.press("b")
        await app.workers.wait_for_complete()
        await pilot.pause()
        body = screen.query_one("#detail-body")
        assert body.display and "no body" in body.text  # type: ignore[attr-defined]
        await pilot.press("escape")  # leaves the body view focus, then the screen
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_help_lists_every_key_with_reasons() -> None:
    app = demo_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        from tui.ui.screens.help import help_table

        table = help_table(ActionContext("demo"), {})
        assert table.row_count == len(KEYS)
        text = " ".join(str(cell) for col in table.columns for cell in col._cells)
        for word in (
            "filter",
            "follow",
            "log pane",
            "slots",
            "MCP",
            "compact",
            "restart",
            "transforms",
            "quit",
        ):
            assert word in text
        assert text.count(DEMO_REASON) == 5
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)


async def test_later_actions_are_greyed_and_explained() -> None:
    app = demo_app()
    notices = Notices()
    async with app.run_test(size=(100, 40), message_hook=notices) as pilot:
        await app.workers.wait_for_complete()
        screen = app.screen
        for action in ("compact", "restart_server", "transforms"):
            assert screen.check_action(action, ()) is None
        assert screen.check_action("compact_undo", ()) is False  # hidden until there is something to undo
        footer = screen.query_one(Footer)
        await pilot.pause()
        disabled = {key.action for key in footer.query("FooterKey") if key.has_class("-disabled")}  # type: ignore[attr-defined]
        assert {"compact", "restart_server", "transforms"} <= disabled
        for key in ("c", "r", "t"):
            await pilot.press(key)
        await pilot.pause()
        messages = [n.message for n in notices.shown]
        assert sum(DEMO_REASON in m for m in messages) == 3
        assert isinstance(app.screen, MainScreen)


NO_PROXY = "no proxy answers at 127.0.0.1:3000 — start `ctxbudget proxy`"


async def test_attach_mode_reason_says_why() -> None:
    silent = ControlSnapshot(answers=False, address="127.0.0.1:3000", error="no answer")
    context = ActionContext("attach", silent, "127.0.0.1:3000")
    for action in ("transforms", "toggle_server", "compact_undo"):
        assert (
            unavailable_reason(action, context)
            == "no proxy answers at 127.0.0.1:3000 — start `ctxbudget proxy`"
        )
    assert unavailable_reason("compact", context) is None  # pane mode needs no proxy
    assert unavailable_reason("filter", context) is None
    answering = ActionContext("attach", ControlSnapshot(answers=True, address="127.0.0.1:3000"))
    assert unavailable_reason("transforms", answering) is None
    assert unavailable_reason("compact_undo", answering) == "no active compaction to undo"
    assert unavailable_reason("restart_server", ActionContext("live", server_model="")) is not None


async def test_command_palette_offers_current_commands() -> None:
    app = demo_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"show log")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause()
        main = app.main_screen
        assert main.pane == "log"


async def test_keymap_from_settings_remaps_keys() -> None:
    settings = dataclasses.replace(Settings(), keys={"log": "g", "compact": "x", "compact_undo": "z"})
    app = demo_app(settings)
    notices = Notices()
    async with app.run_test(size=(100, 40), message_hook=notices) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("l")
        await pilot.pause()
        assert app.main_screen.pane == ""
        await pilot.press("g")
        await pilot.pause()
        assert app.main_screen.pane == "log"
        await pilot.press("x", "z")
        await pilot.pause()
        assert sum(DEMO_REASON in n.message for n in notices.shown) == 2


async def test_q_quits() -> None:
    app = demo_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_mid_prompt_shows_progress_bar() -> None:
    progress_times = [
        e.t for e in RECORDING.entries if e.type == "log" and "prompt processing, n_tokens" in e.data
    ]
    assert progress_times, "the recording must hold a long prompt with progress lines"
    app = demo_app(until=progress_times[len(progress_times) // 2])
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("s")
        await pilot.pause()
        slots = app.screen.query_one(SlotsPanel)
        busy = [s for s in slots.states if s.phase == "prompt"]
        assert busy and busy[0].progress is not None and 0 < busy[0].progress < 1
        assert "█" in str(slots.render()) and "prompt" in str(slots.render())


def test_budget_segments_match_anatomy() -> None:
    record_entry = next(
        e for e in reversed(RECORDING.entries) if e.type == "record" and e.data["kind"] == "main"
    )
    from tui.core.feed.codec import record_from_json

    record = record_from_json(record_entry.data)
    budget = budget_of(record, 32768)
    assert budget is not None
    used = sum(s.tokens for s in budget.segments if s.key != "free")
    assert record.anatomy is not None and used == record.anatomy.total_tokens


async def test_gpu_sample_shows_vram_share_and_power() -> None:
    """The GPU path of the memory panel (this machine has no NVIDIA GPU: a sample as NVML reports one)."""
    from tui.core.poll.snapshots import GpuDevice, GpuSnapshot
    from tui.ui.widgets.memory_panel import MemoryPanel

    gib = 1024**3
    sample = GpuSnapshot(
        ts=CLOCK_BASE,
        available=True,
        devices=(
            GpuDevice(
                0, "NVIDIA H100", 20 * gib, 80 * gib, util_pct=35.0, power_w=210.0, power_limit_w=700.0
            ),
        ),
        server_pid=1234,
        server_process_vram=18 * gib,
    )
    app = demo_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        app.feed.set_gpu(sample)
        await pilot.pause()
        text = str(app.screen.query_one(MemoryPanel).render())
        assert "VRAM 20.0 GiB / 80.0 GiB" in text
        assert "llama-server 18.0 GiB" in text and "power 210 W / 700 W" in text and "util 35%" in text


def test_keys_table_declares_each_key_once_and_help_names_every_id() -> None:
    from tui.ui.keys import REMAPPABLE_IDS, bindings
    from tui.ui.screens.help import remap_note

    assert len(REMAPPABLE_IDS) == len(set(REMAPPABLE_IDS))
    note = remap_note().plain
    assert "[keys]" in note  # plain text, not eaten as markup
    assert all(binding_id in note for binding_id in REMAPPABLE_IDS)
    main_ids = {b.id for b in bindings("main")}
    # A key that can be greyed has its explaining twin on the same owner, under the same key.
    for key in KEYS:
        if key.rule is not None and key.owner == "main":
            assert {key.id, f"{key.id}.why"} <= main_ids


async def test_findings_key_opens_the_findings_pane() -> None:
    from tui.ui.screens.findings import FindingsScreen

    app = demo_app()
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.press("i")
        await pilot.pause()
        assert isinstance(app.screen, FindingsScreen)
