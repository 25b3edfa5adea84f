"""The dashboard on a team proxy (real proxy, real llama-server, 2 slots): user column, filter, slots."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from support.eventually import eventually
from support.llama import StartServer
from test_control_api import agent_body
from test_ui_actions import cancel_focused

from tui.core.config import JournalSettings, ProxySettings, ServerSettings, Settings, TeamSettings
from tui.core.control.client import ControlClient
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import LiveDriver
from tui.core.records import RequestRecord
from tui.core.team.keys import hash_key
from tui.ui.app import make_app
from tui.ui.screens.dialogs import ConfirmDialog
from tui.ui.widgets.mcp_table import McpTable
from tui.ui.widgets.requests_table import RequestsTable, record_matches
from tui.ui.widgets.slots_panel import SlotsPanel

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]


def body(words: int) -> dict[str, object]:
    return {
        "model": "claude-test",
        "max_tokens": 8,
        "system": [{"type": "text", "text": "You are a careful coding agent. " * words}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "list the files please"}]}],
    }


def test_user_filter_terms() -> None:
    alice = RequestRecord(id=1, ts=0.0, method="POST", path="/v1/messages", status=200, user="alice")
    single = RequestRecord(id=2, ts=0.0, method="POST", path="/v1/messages", status=200)
    assert record_matches(alice, "user:al") and record_matches(alice, "alice status:2")
    assert not record_matches(single, "user:alice") and not record_matches(alice, "user:bob")


async def test_team_rows_show_their_user_filter_by_user_and_name_each_slot_holder(
    llama_server: StartServer, tmp_path: Path, free_port: int
) -> None:
    server = llama_server(parallel=2, ctx_size=8192)
    keys = {"alice": "ctxb-alice-test-key", "bob": "ctxb-bob-test-key"}
    settings = Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{free_port}", upstream=server.url),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        server=ServerSettings(url=server.url, log_file=str(server.log_path), poll_interval=0.5),
        team=TeamSettings(users={name: hash_key(key) for name, key in keys.items()}),
    )
    app = make_app(DashboardFeed(LiveDriver(settings)), settings)
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(RequestsTable)
        driver = app.feed.driver
        assert isinstance(driver, LiveDriver)
        await eventually(lambda: bool(driver.proxy_url), timeout=60)
        async with httpx.AsyncClient(base_url=driver.proxy_url, timeout=60, trust_env=False) as client:
            # Both at once (-np 2); different sizes tell the two tasks apart in the log.
            answers = await asyncio.gather(
                client.post("/v1/messages", json=body(30), headers={"x-api-key": keys["alice"]}),
                client.post(
                    "/v1/messages", json=body(60), headers={"Authorization": f"Bearer {keys['bob']}"}
                ),
            )
        assert [a.status_code for a in answers] == [200, 200]
        await eventually(lambda: table.row_count == 2, timeout=60)
        assert [c.key.value for c in table.ordered_columns][-1] == "user"
        shown = {str(table.get_cell(str(r.id), "user")) for r in table.records}
        assert shown == {"alice", "bob"}

        # Each slot names the user whose request it served last: that task's prompt size is that user's.
        slots = app.screen.query_one(SlotsPanel)
        monitor = app.feed.monitor
        size_of = {r.usage.prompt_tokens: r.user for r in table.records}

        def expected() -> dict[int, str]:
            newest: dict[int, str] = {}
            for task in reversed(monitor.timeline.requests(16)):
                if task.slot is not None and task.done and task.slot not in newest:
                    newest[task.slot] = size_of.get(task.prompt_tokens, "?")
            return newest

        await eventually(lambda: slots.users and slots.users == expected(), timeout=60, seen=expected)
        assert set(slots.users.values()) <= {"alice", "bob"}
        for slot, user in slots.users.items():
            assert f"slot {slot}" in str(slots.render()) and f"user {user}" in str(slots.render())

        # Alice again: the slot that serves her now names her.
        async with httpx.AsyncClient(base_url=driver.proxy_url, timeout=60, trust_env=False) as client:
            again = await client.post("/v1/messages", json=body(45), headers={"x-api-key": keys["alice"]})
        assert again.status_code == 200
        await eventually(lambda: table.row_count == 3, timeout=60)
        size_of = {r.usage.prompt_tokens: r.user for r in table.records}

        def alice_holds_the_newest() -> bool:
            newest = max(monitor.timeline.requests(16), key=lambda t: t.ended_ts or 0)
            mine = size_of.get(newest.prompt_tokens) == "alice" and newest.slot is not None
            return mine and slots.users.get(newest.slot or 0) == "alice" and slots.users == expected()

        await eventually(alice_holds_the_newest, seen=expected)

        await pilot.press("slash")
        await pilot.press(*"user:alice", "enter")
        await eventually(lambda: table.row_count == 2)
        assert {table.by_id[int(key.value or 0)].user for key in table.rows} == {"alice"}


async def test_the_mcp_key_switches_the_selected_requests_user_only(
    llama_server: StartServer, tmp_path: Path, free_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTXBUDGET_DATA_DIR", str(tmp_path / "data"))
    server = llama_server(ctx_size=8192)
    keys = {"alice": "ctxb-alice-test-key", "bob": "ctxb-bob-test-key"}
    settings = Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{free_port}", upstream=server.url),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        server=ServerSettings(url=server.url, log_file=str(server.log_path), poll_interval=0.5),
        team=TeamSettings(users={name: hash_key(key) for name, key in keys.items()}),
    )
    app = make_app(DashboardFeed(LiveDriver(settings)), settings)
    async with app.run_test(size=(120, 40)) as pilot:
        driver = app.feed.driver
        assert isinstance(driver, LiveDriver)
        await eventually(lambda: bool(driver.proxy_url), timeout=60)
        async with httpx.AsyncClient(base_url=driver.proxy_url, timeout=60, trust_env=False) as client:
            for name in ("bob", "alice"):  # alice's is the newest: the table follows it
                headers = {"x-api-key": keys[name]}
                answer = await client.post("/v1/messages", json=agent_body(), headers=headers)
                assert answer.status_code == 200
        main = app.main_screen
        await eventually(lambda: main.selected is not None and main.selected.user == "alice", timeout=60)
        await eventually(lambda: main.control is not None and main.control.answers)
        await pilot.press("m")
        table = main.query_one(McpTable)
        await eventually(lambda: any(r.name == "filesystem" for r in table.rows_shown))
        table.move_cursor(row=[r.name for r in table.rows_shown].index("filesystem"))
        await pilot.press("space")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        assert isinstance(app.screen, ConfirmDialog) and app.screen.title_text.endswith("off for alice")
        await pilot.press("tab", "enter")
        await eventually(lambda: main.control is not None and "filesystem" in main.control.mcp_off)

        control = ControlClient(driver.proxy_url)

        def off(user: str | None) -> list[str]:
            state = control.state(user)["mcp"]["servers"]
            return [s["server"] for s in state if not s["enabled"]]

        assert await asyncio.to_thread(off, "alice") == ["filesystem"]
        assert await asyncio.to_thread(off, "bob") == []
        assert await asyncio.to_thread(off, None) == []
        control.close()
