"""Issue #14's proof: the "GPU box" in a network namespace behind a veth pair, the laptop outside.

Inside: `ctxbudget serve --proxy` (which starts the real llama-server through server control). Outside:
a real Claude Code run pointed at the remote proxy, the dashboard (Pilot) and CLI commands with
--connect. Asserted: rows, log events, slot state and server state arrive; restart from the laptop
restarts the remote server; no token or a wrong one gets 401 and no data; `ip link set down` then up:
the dashboard reconnects and its row count equals the server journal's.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.agents import make_claude_project, run_claude_print
from support.eventually import eventually
from support.llama import free_port
from support.netns import Box, box_config, ip, start_box_serve
from support.netns import gpu_box as netns_box
from support.notices import Notices
from support.serve_process import ctxbudget_cmd
from test_ui_actions import cancel_focused
from textual.widgets import Button

from tui.core.config import Settings
from tui.core.feed.feed import DashboardFeed
from tui.core.journal.reader import JournalReader
from tui.core.remote.driver import RemoteDriver
from tui.core.serve.auth import load_or_create_token
from tui.core.serve.remote_source import RemoteSource
from tui.ui.app import make_app
from tui.ui.screens.main import MainScreen
from tui.ui.screens.restart_dialog import RestartDialog
from tui.ui.widgets.log_pane import LogPane
from tui.ui.widgets.requests_table import RequestsTable
from tui.ui.widgets.server_header import ServerHeader
from tui.ui.widgets.slots_panel import SlotsPanel

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def gpu_box() -> Iterator[Box]:
    """The "GPU box": a namespace behind a veth pair, removed with everything in it afterwards."""
    with netns_box() as box:
        yield box


def cli(*args: str, token: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CTXBUDGET_TOKEN": token}
    return subprocess.run([*ctxbudget_cmd(), *args], env=env, capture_output=True, text=True, timeout=300)


def journal_count(path: Path) -> int:
    reader = JournalReader(path)
    try:
        return len(reader.since(0, 100_000))
    finally:
        reader.close()


async def test_two_machines_over_a_veth_link(
    gpu_box: Box, llama_server_bin: Path, tiny_model: Path, claude_code: Path, tmp_path: Path
) -> None:
    proxy_port, serve_port = free_port(), free_port()
    config = box_config(tmp_path, llama_server_bin, tiny_model, proxy_port)
    token = load_or_create_token()  # the box and the laptop share the test's config dir: same token file
    url = f"http://{gpu_box.address}:{serve_port}"
    serve = start_box_serve(gpu_box, config, serve_port, tmp_path / "serve.out")
    journal = tmp_path / "journal.sqlite3"
    source = RemoteSource(url, token)
    try:
        # No token, a wrong token: 401 and nothing but the error.
        for headers in ({}, {"Authorization": "Bearer wrong-token"}):
            for path in ("info", "feed", "rows?last=5", "server", "state"):
                answer = httpx.get(f"{url}/_ctxbudget/{path}", headers=headers, timeout=10, trust_env=False)
                assert answer.status_code == 401, (path, answer.text)
                assert set(answer.json()) == {"error"} and answer.json()["error"]["type"] == "unauthorized"
        refused = cli("--connect", url, token="wrong-token")
        assert refused.returncode == 2 and "token refused by" in refused.stderr, refused.stderr

        # The laptop starts the box's llama-server with a CLI command.
        started = cli("server", "start", "--connect", url, token=token)
        assert started.returncode == 0, started.stdout + started.stderr
        status = await asyncio.to_thread(source.server_status)
        assert status["phase"] == "up" and status["owned"], status
        first_pid = status["pid"]

        driver = RemoteDriver(source, await asyncio.to_thread(source.info))
        app = make_app(DashboardFeed(driver), Settings())  # the laptop has no server of its own
        notices = Notices()
        async with app.run_test(size=(140, 44), message_hook=notices) as pilot:
            main = app.main_screen
            header = main.query_one(ServerHeader)
            await eventually(lambda: driver.connected, what="the feed stream")
            assert f"remote {gpu_box.address}:{serve_port}" in str(header.render())
            await eventually(lambda: main.server is not None and main.server.state == "up", timeout=30)

            # A real Claude Code run on the laptop, through the box's proxy.
            info = await asyncio.to_thread(source.info)
            proxy_url = info["proxy_url"]
            assert proxy_url == f"http://{gpu_box.address}:{proxy_port}", info
            project = make_claude_project(tmp_path / "agent")
            run = await asyncio.to_thread(
                run_claude_print, claude_code, project, proxy_url, "say hi", api_key=token
            )
            assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
            table = main.query_one(RequestsTable)

            def agent_rows() -> bool:
                messages = [r for r in table.by_id.values() if r.path.startswith("/v1/messages")]
                return bool(messages) and table.row_count == journal_count(journal)

            await eventually(
                agent_rows, what="the agent's rows", seen=lambda: [r.path for r in table.by_id.values()]
            )
            await pilot.press("l")
            log = main.query_one(LogPane)
            await eventually(lambda: any("slot" in line.text for line in log.kept), what="log events")
            await eventually(lambda: bool(main.query_one(SlotsPanel).states), what="slot state")

            # Restart from the laptop restarts the box's server.
            await pilot.press("r")
            await eventually(lambda: cancel_focused(app, RestartDialog))
            assert isinstance(app.screen, RestartDialog)
            app.screen.query_one("#confirm", Button).press()
            await eventually(lambda: isinstance(app.screen, MainScreen))
            await eventually(lambda: main.restart_phase in ("up", "failed"), timeout=300)
            assert main.restart_phase == "up", [n.message for n in notices.shown]
            status = await asyncio.to_thread(source.server_status)
            assert status["phase"] == "up" and status["pid"] != first_pid, status

            # The link goes down; a row is journaled on the box meanwhile; the link comes back.
            ip("link", "set", gpu_box.laptop_link, "down")
            try:
                await eventually(lambda: "disconnected" in header.link, timeout=40, what="disconnected")
                box_post = (
                    f"import httpx; httpx.post('http://127.0.0.1:{proxy_port}/v1/messages', "
                    "headers={'x-api-key': 'k'}, timeout=120, trust_env=False, "
                    "json={'model': 'm', 'max_tokens': 4, 'messages': [{'role': 'user', 'content': 'hi'}]})"
                )
                before = journal_count(journal)
                python = str(Path(ctxbudget_cmd()[0]).with_name("python"))
                await asyncio.to_thread(
                    subprocess.run, ["ip", "netns", "exec", gpu_box.netns, python, "-c", box_post],
                    check=True, timeout=180,
                )  # fmt: skip
                await eventually(
                    lambda: journal_count(journal) == before + 1, what="a row journaled on the box"
                )
            finally:
                ip("link", "set", gpu_box.laptop_link, "up")
            await eventually(lambda: header.link == "", timeout=60, what="reconnected")
            await eventually(
                lambda: table.row_count == journal_count(journal), what="rows after the link is back"
            )
            assert len(table.by_id) == table.row_count == journal_count(journal)

        listed = cli("requests", "--connect", url, "--json", token=token)
        assert listed.returncode == 0, listed.stderr
        assert len([line for line in listed.stdout.splitlines() if line.strip().startswith("{")]) >= 1
    finally:
        try:
            await asyncio.to_thread(source.server_action, "stop", {}, lambda step: None)
        except Exception:  # the namespace finalizer kills what is left
            pass
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(timeout=20)
        except subprocess.TimeoutExpired:
            serve.kill()
        await asyncio.to_thread(source.close)
