"""Router mode through `ctxbudget serve`: the laptop loads, unloads and restarts one model of the box's
router (real llama-server b11434 with --models-dir, two tiny models and a broken file), with the CLI
(`server load|unload|restart --model NAME --connect URL`) and with the remote dashboard's `r`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from support.eventually import eventually
from support.notices import Notices
from support.serve_process import ServeProcess, ctxbudget_cmd, start_serve
from test_router_real import Router, router, said  # noqa: F401 - the fixture is used by name
from test_ui_actions import cancel_focused
from textual.widgets import OptionList, Static

from tui.core.config import Settings
from tui.core.feed.feed import DashboardFeed
from tui.core.remote.driver import RemoteDriver
from tui.core.serve.auth import load_or_create_token
from tui.core.serve.remote_source import RemoteSource
from tui.ui.app import make_app
from tui.ui.screens.dialogs import ConfirmDialog, PickDialog

pytestmark = [pytest.mark.llama, pytest.mark.timeout(300)]


def start_box(server: Router, tmp_path: Path) -> ServeProcess:
    """serve on the "GPU box", following the router (no [server] model: a router needs none)."""
    box = tmp_path / "box"
    box.mkdir()
    config = box / "config.toml"
    config.write_text(
        f"""
[journal]
path = "{box / "journal.sqlite3"}"

[server]
url = "{server.url}"
log_file = "{server.log}"
poll_interval = 0.3
"""
    )
    return start_serve(config, box)


def laptop(serve: ServeProcess, token: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`ctxbudget server ARGS --connect URL` with the laptop's own (empty) config."""
    empty = cwd / "laptop.toml"
    empty.write_text("# the laptop: defaults only\n")
    env = {**os.environ, "CTXBUDGET_CONFIG": str(empty), "CTXBUDGET_TOKEN": token}
    return subprocess.run(
        [*ctxbudget_cmd(), "server", *args, "--connect", serve.url],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=240,
    )  # fmt: skip


def test_load_unload_restart_one_model_from_the_laptop(router: Router, tmp_path: Path) -> None:  # noqa: F811
    serve = start_box(router, tmp_path)
    token = load_or_create_token()
    here = tmp_path / "laptop"
    here.mkdir()
    try:
        status = laptop(serve, token, here, "status", "--json")
        assert status.returncode == 0, status.stderr
        listed = json.loads(status.stdout)
        assert listed["router"] is True
        assert {m["id"]: m["status"] for m in listed["models"]} == {
            "alpha": "unloaded", "beta": "unloaded", "broken": "unloaded",
        }  # fmt: skip

        loaded = laptop(serve, token, here, "load", "--model", "beta", "--json")
        assert loaded.returncode == 0, loaded.stderr
        outcome = json.loads(loaded.stdout)
        assert outcome["ok"] and outcome["status"] == "loaded" and outcome["seen"][0] == "unloaded"
        assert router.statuses()["beta"] == "loaded"
        text = laptop(serve, token, here, "status").stdout
        assert "router with 3 model(s)" in text and "  beta: loaded, 2 slot(s) × 2048 tokens" in text

        restarted = laptop(serve, token, here, "restart", "--model", "beta")
        assert restarted.returncode == 0, restarted.stderr
        assert restarted.stdout.startswith("beta: restart done, now loaded (loaded → unloaded")

        unloaded = laptop(serve, token, here, "unload", "--model", "beta")
        assert unloaded.returncode == 0 and unloaded.stdout.startswith("beta: unload done, now unloaded")
        assert router.statuses()["beta"] == "unloaded"

        broken = laptop(serve, token, here, "load", "--model", "broken")
        assert broken.returncode == 1 and "broken: load failed, now failed (exit code" in broken.stdout
        unknown = laptop(serve, token, here, "load", "--model", "nope")
        assert unknown.returncode == 1
        assert "the router has no model 'nope'; it has: alpha, beta, broken" in unknown.stderr
        unnamed = laptop(serve, token, here, "unload")
        assert unnamed.returncode == 2 and "--model NAME" in unnamed.stderr

        # The wire: a load without a model is a bad request; a wrong token gets nothing.
        no_model = httpx.post(
            serve.url + "/_ctxbudget/server/load", json={}, headers={"Authorization": f"Bearer {token}"}
        )
        assert no_model.status_code == 400 and no_model.json()["error"]["type"] == "bad_request"
        wrong = httpx.post(
            serve.url + "/_ctxbudget/server/unload", json={"model": "beta"},
            headers={"Authorization": "Bearer wrong"},
        )  # fmt: skip
        assert wrong.status_code == 401 and "beta" not in wrong.text
    finally:
        assert serve.stop() == 0, serve.output()


async def test_remote_r_lists_the_router_models_and_acts_on_the_box(
    router: Router, tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    serve = start_box(router, tmp_path)
    source = RemoteSource(serve.url, load_or_create_token())
    try:
        driver = RemoteDriver(source, await asyncio.to_thread(source.info), read_timeout=3.0)
        app = make_app(DashboardFeed(driver), Settings())  # the laptop's settings: no server at all
        notices = Notices()
        async with app.run_test(size=(140, 40), message_hook=notices) as pilot:
            main = app.main_screen
            await eventually(lambda: main.server is not None and main.server.router, timeout=30)
            assert main.reason("restart_server") is None

            await pilot.press("r")
            await eventually(lambda: isinstance(app.screen, PickDialog), timeout=30)
            options = app.screen.query_one(OptionList)
            labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            assert labels[:3] == ["load alpha (unloaded)", "load beta (unloaded)", "load broken (unloaded)"]
            assert labels[-1].startswith("restart the whole router")
            note = str(app.screen.query_one("#dialog-body", Static).render())
            assert note.startswith(f"Router mode on {driver.server_control().where.strip()[3:]}"), note
            await pilot.press("down", "enter")  # load beta: on the box, at once
            await eventually(lambda: said(notices, "beta: load done"), timeout=60)
            assert router.statuses()["beta"] == "loaded"

            await eventually(
                lambda: {m.id: m.status for m in main.server.models}.get("beta") == "loaded",  # type: ignore[union-attr]
                timeout=30,
            )
            await pilot.press("r")
            await eventually(lambda: isinstance(app.screen, PickDialog), timeout=30)
            options = app.screen.query_one(OptionList)
            labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
            assert "unload beta (loaded, 2×2,048)" in labels
            for _ in range(labels.index("unload beta (loaded, 2×2,048)")):
                await pilot.press("down")
            await pilot.press("enter")
            await eventually(lambda: cancel_focused(app, ConfirmDialog))
            await pilot.press("tab", "enter")  # Unload
            shown = lambda: [n.message for n in notices.shown]  # noqa: E731 - what a failure lists
            await eventually(lambda: said(notices, "beta: unload done"), timeout=60, seen=shown)
            assert router.statuses()["beta"] == "unloaded"
    finally:
        source.close()
        assert serve.stop() == 0, serve.output()
