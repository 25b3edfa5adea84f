"""The dashboard with --connect against a real `ctxbudget serve --proxy` and a real llama-server.

Rows, log lines, slot state and server state arrive over the feed; restart, the MCP toggle, transforms,
compaction and its undo act on the serve host (the laptop's own settings name no server or model); a
stalled link (serve stopped with SIGSTOP) shows "disconnected, retrying" and resumes with the journal's
row count.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from support.eventually import eventually
from support.llama import free_port
from support.notices import Notices
from support.serve_process import ctxbudget_cmd, start_serve
from test_actions_compaction import BODIES
from test_control_api import agent_body
from test_ui_actions import cancel_focused
from textual.widgets import Button, Input

from tui.core.config import Settings
from tui.core.feed.feed import DashboardFeed
from tui.core.journal.reader import JournalReader
from tui.core.remote.driver import RemoteDriver
from tui.core.serve.auth import load_or_create_token
from tui.core.serve.remote_source import RemoteSource
from tui.ui.app import make_app
from tui.ui.screens.compact_dialog import CompactDialog
from tui.ui.screens.dialogs import ConfirmDialog
from tui.ui.screens.main import MainScreen
from tui.ui.screens.restart_dialog import RestartDialog
from tui.ui.screens.transforms import TransformsScreen
from tui.ui.widgets.log_pane import LogPane
from tui.ui.widgets.mcp_table import McpTable
from tui.ui.widgets.requests_table import RequestsTable
from tui.ui.widgets.server_header import ServerHeader
from tui.ui.widgets.slots_panel import SlotsPanel

pytestmark = [pytest.mark.llama, pytest.mark.timeout(300)]

BODY = {
    "model": "claude-test",
    "max_tokens": 8,
    "stream": True,
    "system": [{"type": "text", "text": "You are a careful coding agent. " * 20}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "list the files please"}]}],
}


def box_config(tmp_path: Path, binary: Path, model: Path) -> Path:
    """The GPU box's config: a llama-server ctxbudget starts itself, the proxy, the journal."""
    port, proxy_port = free_port(), free_port()
    config = tmp_path / "box.toml"
    config.write_text(
        f"""
[proxy]
listen = "127.0.0.1:{proxy_port}"
upstream = "http://127.0.0.1:{port}"

[journal]
path = "{tmp_path / "journal.sqlite3"}"
store_bodies = true

[server]
url = "http://127.0.0.1:{port}"
model = "{model}"
binary = "{binary}"
ctx_size = 2048
parallel = 1
log_file = "{tmp_path / "server.log"}"
extra_args = ["-t", "1", "-n", "16"]
poll_interval = 0.5
"""
    )
    return config


def journal_count(path: Path) -> int:
    reader = JournalReader(path)
    try:
        return len(reader.since(0, 10_000))
    finally:
        reader.close()


async def post(proxy_url: str, text: str) -> None:
    body = {**BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        answer = await client.post(proxy_url + "/v1/messages", json=body, headers={"x-api-key": "k"})
    assert answer.status_code == 200, answer.text


async def test_connect_dashboard_shows_remote_data_restarts_remote_server_and_resumes(
    llama_server_bin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    config = box_config(tmp_path, llama_server_bin, tiny_model)
    token = load_or_create_token()
    serve = start_serve(config, tmp_path, "--proxy")
    source = RemoteSource(serve.url, token)
    try:
        driver = RemoteDriver(
            source, await asyncio.to_thread(source.info), read_timeout=3.0, backoff=(0.5, 1.0)
        )
        app = make_app(DashboardFeed(driver), Settings())  # the laptop's settings: no server, no model
        notices = Notices()
        async with app.run_test(size=(140, 44), message_hook=notices) as pilot:
            main = app.main_screen
            header = main.query_one(ServerHeader)
            await eventually(lambda: driver.connected, what="the feed stream")
            port = serve.url.rsplit(":", 1)[1]
            assert f"remote 127.0.0.1:{port}" in str(header.render())
            assert "on that host" in str(header.render())
            await eventually(lambda: main.server is not None and main.server.state == "down")

            # r: the restart runs on the serve host, which starts its configured llama-server.
            await pilot.press("r")
            await eventually(lambda: cancel_focused(app, RestartDialog))
            dialog = app.screen
            assert isinstance(dialog, RestartDialog)
            assert "on " in str(dialog.query_one("#dialog-body").render())
            dialog.query_one("#ctx-size", Input).value = "8192"
            dialog.query_one("#parallel", Input).value = "1"
            dialog.query_one("#confirm", Button).press()
            await eventually(lambda: isinstance(app.screen, MainScreen))
            await eventually(lambda: main.restart_phase in ("up", "failed"), timeout=120)
            assert main.restart_phase == "up", [n.message for n in notices.shown]
            await eventually(lambda: main.server is not None and main.server.state == "up", timeout=30)
            status = await asyncio.to_thread(source.server_status)
            assert status["phase"] == "up" and status["owned"]

            # Traffic through the remote proxy: rows, log lines and slot state arrive.
            info = await asyncio.to_thread(source.info)
            proxy_url = info["proxy_url"]
            assert proxy_url
            await post(proxy_url, "one")
            await post(proxy_url, "two")
            table = main.query_one(RequestsTable)
            await eventually(lambda: table.row_count == 2, what="two rows")
            await pilot.press("l")
            log = main.query_one(LogPane)
            await eventually(lambda: any("slot" in line.text for line in log.kept), what="slot log lines")
            slots = main.query_one(SlotsPanel)
            await eventually(lambda: bool(slots.states), what="slot state from the remote log")
            await eventually(lambda: main.control is not None and main.control.answers, what="remote control")

            # MCP toggle and transforms act on the box's proxy (through serve, with the token).
            async with httpx.AsyncClient(timeout=120, trust_env=False) as client:
                answer = await client.post(
                    proxy_url + "/v1/messages", json=agent_body(), headers={"x-api-key": "k"}
                )
            assert answer.status_code == 200, answer.text
            await eventually(lambda: table.row_count == 3, what="the agent's row")
            newest = max(table.by_id)
            await eventually(
                lambda: (
                    main.selected is not None
                    and main.selected.id == newest
                    and main.selected.anatomy is not None
                ),
                what="the agent's row selected (following)",
                seen=lambda: (main.selected.id if main.selected else None, newest),
            )
            await pilot.press("m")
            mcp = main.query_one(McpTable)
            await eventually(
                lambda: any(r.name == "filesystem" for r in mcp.rows_shown),
                what="MCP rows",
                seen=lambda: (
                    mcp.rows_shown,
                    main.selected.anatomy.mcp_servers if main.selected and main.selected.anatomy else None,
                ),
            )
            mcp.move_cursor(row=[r.name for r in mcp.rows_shown].index("filesystem"))
            await pilot.press("space")
            await eventually(lambda: cancel_focused(app, ConfirmDialog))
            await pilot.press("tab", "enter")
            await eventually(lambda: main.control is not None and "filesystem" in main.control.mcp_off)
            remote = await asyncio.to_thread(source.control_client().state)
            assert {s["server"]: s["enabled"] for s in remote["mcp"]["servers"]}["filesystem"] is False
            await pilot.press("t")
            await eventually(lambda: isinstance(app.screen, TransformsScreen), what="the transforms screen")
            await pilot.press("space")
            await eventually(lambda: cancel_focused(app, ConfirmDialog))
            await pilot.press("tab", "enter")
            await eventually(
                lambda: any("stabilize off" in n.message for n in notices.shown), what="stabilize off"
            )
            remote = await asyncio.to_thread(source.control_client().state)
            assert "stabilize" not in remote["transforms"]["enabled"]
            await pilot.press("escape")
            await eventually(lambda: isinstance(app.screen, MainScreen))

            # c (proxy mode: no agent runs in tmux here) compacts in the box's proxy; u undoes it there.
            async with httpx.AsyncClient(timeout=120, trust_env=False) as client:
                body = {**BODIES["anthropic"](3), "max_tokens": 2}
                answer = await client.post(proxy_url + "/v1/messages", json=body, headers={"x-api-key": "k"})
            assert answer.status_code == 200, answer.text
            await eventually(lambda: table.row_count == 4, what="the long session's row")
            await pilot.press("c")
            await eventually(lambda: cancel_focused(app, CompactDialog))
            await pilot.press("tab", "enter")
            await eventually(lambda: main.control is not None and bool(main.control.compactions), timeout=120)
            remote = await asyncio.to_thread(source.control_client().state)
            assert remote["compactions"]["active"]
            await pilot.press("u")
            await eventually(lambda: cancel_focused(app, ConfirmDialog))
            await pilot.press("tab", "enter")
            await eventually(lambda: main.control is not None and not main.control.compactions)
            remote = await asyncio.to_thread(source.control_client().state)
            assert remote["compactions"]["active"] == []

            # A stalled link: disconnected, retrying; a row journaled meanwhile arrives once, after.
            os.kill(serve.proc.pid, signal.SIGSTOP)
            try:
                await eventually(lambda: "disconnected" in header.link, timeout=20, what="disconnected")
                assert "retrying in" in header.link
                await post(proxy_url, "five")  # the proxy child journals it while serve is stopped
            finally:
                os.kill(serve.proc.pid, signal.SIGCONT)
            await eventually(lambda: header.link == "", timeout=30, what="reconnected")
            journal = tmp_path / "journal.sqlite3"
            await eventually(lambda: table.row_count == journal_count(journal) == 5, what="rows after resume")
            assert len(set(table.by_id)) == table.row_count
    finally:
        await asyncio.to_thread(source.server_action, "stop", {}, lambda step: None)
        serve.stop()
        await asyncio.to_thread(source.close)


def test_connect_with_a_wrong_token_is_one_line_and_exit_2(
    llama_server_bin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    config = box_config(tmp_path, llama_server_bin, tiny_model)
    token = load_or_create_token()
    serve = start_serve(config, tmp_path)
    try:
        for given in ("not-the-token", "another-wrong-token"):  # on loopback no token at all is accepted
            env = {**os.environ, "CTXBUDGET_TOKEN": given, "TERM": "dumb"}
            done = subprocess.run(
                [*ctxbudget_cmd(), "--connect", serve.url],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 2, done.stderr
            assert done.stderr.strip() == (
                f"ctxbudget: token refused by {serve.url}: set CTXBUDGET_TOKEN (or --token-file) "
                "to the value `ctxbudget serve --show-token` prints on the server"
            )
            assert token not in done.stderr + done.stdout and not done.stdout
    finally:
        serve.stop()


async def test_connect_over_tls_with_the_ca_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argparse import Namespace

    from test_serve_auth import empty_config, self_signed

    from tui.commands.connect_opts import remote_from_args

    cert, key = self_signed(tmp_path)
    token = load_or_create_token()
    serve = start_serve(empty_config(tmp_path), tmp_path, "--tls-cert", str(cert), "--tls-key", str(key))
    url = serve.url.replace("0.0.0.0", "127.0.0.1")
    assert url.startswith("https://")
    monkeypatch.setenv("CTXBUDGET_TOKEN", token)
    monkeypatch.setenv("CTXBUDGET_TLS_CA", str(cert))
    source = remote_from_args(Namespace(connect=url, token_file=None, tls_ca=None))
    assert source is not None
    try:
        driver = RemoteDriver(source, await asyncio.to_thread(source.info))
        app = make_app(DashboardFeed(driver), Settings())
        async with app.run_test(size=(120, 30)):
            await eventually(lambda: driver.connected, what="the TLS feed stream")
            main = app.main_screen
            await eventually(lambda: main.server is not None, what="the box's server state over TLS")
            assert "remote 127.0.0.1:" in str(main.query_one(ServerHeader).render())
        # Without the CA the certificate is refused: the dashboard keeps retrying and says why.
        untrusted = RemoteDriver(RemoteSource(url, token), {}, backoff=(0.2,))
        feed = DashboardFeed(untrusted)
        links: list[str] = []
        feed.subscribe(
            lambda u: links.append(getattr(u, "message", "")) if getattr(u, "source", "") == "link" else None
        )
        task = asyncio.create_task(feed.run())
        try:
            await eventually(lambda: any("disconnected" in text for text in links), what="TLS refused")
            assert not untrusted.connected
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        serve.stop()
        await asyncio.to_thread(source.close)
