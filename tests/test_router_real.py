"""Router mode against the real llama-server b11434: --models-dir with two tiny models and a broken file.

The router lists its models at GET /models (status loaded / loading / unloaded / sleeping, `failed` and
`exit_code` after a failed load); `?model=` reaches one model's /props, /slots and /metrics, and on an
unloaded model it would load it (autoload): the poller asks only about loaded ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.eventually import eventually, eventually_sync
from support.llama import free_port
from support.tiny_models import write_dense_model
from test_control_api import Proxy, StartProxy, start_proxy  # noqa: F401 - the fixture is used by name
from test_doctor import by_check, settings
from test_e2e_eviction import Conversation, explained_and_stored, start_feed

from tui.core.config import JournalSettings, ProxySettings, ServerSettings, Settings
from tui.core.doctor import diagnose
from tui.core.feed.codec import server_from_json, server_to_json
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import LiveDriver
from tui.core.feed.updates import FeedInfo, SourceStatus
from tui.core.journal.reader import JournalReader
from tui.core.poll.server_poller import ServerPoller
from tui.core.poll.snapshots import ServerSnapshot
from tui.ui.widgets.server_header import ServerHeader

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]
CONSOLE_SCRIPT = Path(sys.executable).with_name("ctxbudget")
IDLE_S = 3  # --sleep-idle-seconds: a loaded model left alone this long goes to sleep


@dataclass
class Router:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def statuses(self) -> dict[str, str]:
        data = httpx.get(self.url + "/models", timeout=5).json()["data"]
        return {m["id"]: ("failed" if m["status"].get("failed") else m["status"]["value"]) for m in data}

    def load(self, model: str) -> None:
        answer = httpx.post(self.url + "/models/load", json={"model": model}, timeout=30)
        assert answer.status_code == 200, answer.text


@pytest.fixture
def router(llama_server_bin: Path, tmp_path: Path) -> Iterator[Router]:
    args = ("-c", "4096", "-np", "2", "-t", "1", "--metrics", "--sleep-idle-seconds", str(IDLE_S))
    with running_router(llama_server_bin, tmp_path, *args) as server:
        yield server


@contextmanager
def running_router(llama_server_bin: Path, tmp_path: Path, *args: str) -> Iterator[Router]:
    """A router on --models-dir (alpha, beta and a broken file); its children get `args` too."""
    models = tmp_path / "models"
    models.mkdir()
    write_dense_model(models / "alpha.gguf", name="alpha")
    write_dense_model(models / "beta.gguf", name="beta")
    (models / "broken.gguf").write_bytes(b"GGUF" + os.urandom(4092))  # a GGUF magic, then noise
    port = free_port()
    log = tmp_path / "router.log"
    proc = subprocess.Popen(
        [
            str(llama_server_bin), "--models-dir", str(models), "--host", "127.0.0.1", "--port", str(port),
            *args, "--log-file", str(log), "--log-colors", "off",
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server = Router(f"http://127.0.0.1:{port}", proc, log)
    try:
        eventually_sync(lambda: _healthy(server.url), timeout=30, what="the router answering /health")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


async def poll(url: str) -> ServerSnapshot:
    poller = ServerPoller(url)
    try:
        return await poller.poll_once()
    finally:
        await poller.aclose()


async def header_text(snapshot: ServerSnapshot) -> str:
    from textual.app import App, ComposeResult

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield ServerHeader(FeedInfo(mode="live", proxy_address="127.0.0.1:1"))

    app = One()
    async with app.run_test(size=(200, 6)) as pilot:
        header = app.query_one(ServerHeader)
        header.show(server=snapshot)
        await pilot.pause()
        return header.render().plain


async def panel_text(snapshot: ServerSnapshot, panel_type: Any, size: tuple[int, int]) -> str:
    """What a server-fed panel (MemoryPanel, SlotsPanel) shows for one snapshot."""
    from textual.app import App, ComposeResult

    class One(App[None]):
        def compose(self) -> ComposeResult:
            yield panel_type()

    app = One()
    async with app.run_test(size=size) as pilot:
        panel = app.query_one(panel_type)
        panel.show(server=snapshot)
        await pilot.pause()
        return str(panel.render().plain)


async def kv_panel_text(snapshot: ServerSnapshot) -> str:
    from tui.ui.widgets.memory_panel import MemoryPanel

    return await panel_text(snapshot, MemoryPanel, (200, 6))


async def slots_panel_text(snapshot: ServerSnapshot) -> str:
    from tui.ui.widgets.slots_panel import SlotsPanel

    return await panel_text(snapshot, SlotsPanel, (120, 20))


async def test_router_models_states_slots_and_requests(
    router: Router, start_proxy: StartProxy  # noqa: F811 - the imported fixture
) -> None:
    first = await poll(router.url)
    assert first.router and first.state == "up" and first.model == ""
    none_loaded = {"alpha": "unloaded", "beta": "unloaded", "broken": "unloaded"}
    assert {m.id: m.status for m in first.models} == none_loaded
    assert "router: no model loaded (a request for one loads it)" in first.notes
    assert router.statuses() == none_loaded  # the poll loaded nothing

    # A request names its model: the router loads it, and the journal row says which model served it.
    proxy: Proxy = await start_proxy(router.url)
    body = {"model": "alpha", "max_tokens": 4, "messages": [{"role": "user", "content": "hello"}]}
    row = await proxy.send(body, path="/v1/chat/completions")
    assert row.status == 200 and row.model == "alpha"
    router.load("broken")
    eventually_sync(lambda: router.statuses()["broken"] == "failed", timeout=30, what="broken failing")

    snap = await poll(router.url)
    models = {m.id: m for m in snap.models}
    assert models["alpha"].status == "loaded" and models["alpha"].n_slots == 2
    # -c 4096 -np 2 without unified KV: 2,048 per slot, read through /props and /slots ?model=alpha.
    assert models["alpha"].n_ctx_slot == 2048 and len(models["alpha"].slots) == 2
    assert models["beta"].status == "unloaded" and models["beta"].n_slots == 0
    assert models["broken"].status == "failed" and models["broken"].exit_code not in (None, 0)
    assert snap.model == "alpha" and snap.n_slots == 2 and snap.n_ctx_slot == 2048  # the model in front
    assert snap.metrics is not None and snap.metrics.prompt_tokens_total > 0  # /metrics?model=alpha
    assert router.statuses()["beta"] == "unloaded"  # the poll never loads a model
    # The feed carries router snapshots to a remote dashboard and recordings: plain JSON both ways.
    assert server_from_json(json.loads(json.dumps(server_to_json(snap)))) == snap
    text = await header_text(snap)
    assert "models alpha loaded 2×2,048 · beta unloaded · broken failed" in text
    # With two models loaded, the KV panel shows each one's slots under its name.
    router.load("beta")
    eventually_sync(lambda: router.statuses()["beta"] == "loaded", timeout=30, what="beta loaded")
    both = await poll(router.url)
    panel = await kv_panel_text(both)
    first_line = panel.splitlines()[0]
    assert re.match(r"KV  alpha  s0 .*  s1 .*  beta  s0 .*  s1 ", first_line), first_line
    # And the slot panel (s) lists each model's slots under its name, not only the model in front.
    lines = (await slots_panel_text(both)).splitlines()
    expected = ["alpha", "slot 0", "slot 1", "beta", "slot 0", "slot 1"]
    assert [line.split("  ")[0] for line in lines] == expected, lines
    assert all("ctx " in line for line in lines if line.startswith("slot ")), lines

    # Idle, alpha goes to sleep although the dashboard keeps polling every 0.3 s (no /slots without work:
    # that call resets the idle timer), and polls report it asleep without waking it.
    poller = ServerPoller(router.url)
    deadline = time.monotonic() + IDLE_S + 20
    try:
        while True:
            asleep = await poller.poll_once()
            if {m.id: m.status for m in asleep.models}["alpha"] == "sleeping":
                break
            assert time.monotonic() < deadline, "alpha never slept while polled"
            await asyncio.sleep(0.3)
    finally:
        await poller.aclose()
    time.sleep(0.5)
    assert router.statuses()["alpha"] == "sleeping"
    assert "alpha sleeping" in await header_text(asleep)


async def test_status_json_and_doctor_list_each_model(router: Router, tmp_path: Path) -> None:
    router.load("alpha")
    eventually_sync(lambda: router.statuses()["alpha"] == "loaded", timeout=30, what="alpha loaded")
    router.load("broken")
    eventually_sync(lambda: router.statuses()["broken"] == "failed", timeout=30, what="broken failing")
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nurl = "{router.url}"\n')
    out = subprocess.run(
        [str(CONSOLE_SCRIPT), "--config", str(config), "server", "status", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert status["router"] is True
    listed = {m["id"]: (m["status"], m["n_ctx"]) for m in status["models"]}
    assert listed == {"alpha": ("loaded", 2048), "beta": ("unloaded", None), "broken": ("failed", None)}
    text = subprocess.run(
        [str(CONSOLE_SCRIPT), "--config", str(config), "server", "status"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert "router with 3 model(s)" in text and "  alpha: loaded, 2 slot(s) × 2048 tokens" in text

    _, results = await diagnose(settings({"url": router.url}, {"client": "opencode"}))
    checks = by_check(results)
    presets = checks["presets"]
    assert presets.status == "fail" and presets.message.startswith("broken: its last load failed (exit code")
    assert "alpha loaded 2×2,048" in presets.message and "beta unloaded" in presets.message
    assert checks["model"].status == "pass"  # the loaded model in front stands for the server


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "--config", str(config), "server", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


async def test_load_unload_and_restart_one_model(router: Router, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nurl = "{router.url}"\n')

    # While `server load` runs, the dashboard's poller watches beta go unloaded → (loading →) loaded.
    loader = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "--config", str(config), "server", "load", "--model", "beta", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    watched: list[str] = []
    poller = ServerPoller(router.url, metrics=False)
    try:
        while loader.poll() is None or not watched or watched[-1] != "loaded":
            snap = await poller.poll_once()
            assert snap.models, (snap.state, snap.error)
            state = {m.id: m.status for m in snap.models}["beta"]
            if not watched or watched[-1] != state:
                watched.append(state)
            assert len(watched) <= 3, watched
    finally:
        await poller.aclose()
    out, err = loader.communicate(timeout=60)
    assert loader.returncode == 0, err
    loaded = json.loads(out)
    assert loaded["ok"] and loaded["status"] == "loaded" and loaded["seen"][0] == "unloaded"
    assert watched[0] == "unloaded" and watched[-1] == "loaded"
    assert [s for s in watched if s not in ("unloaded", "loading", "loaded")] == []

    restarted = cli(config, "restart", "--model", "beta")
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.startswith("beta: restart done, now loaded (loaded → unloaded")
    unloaded = cli(config, "unload", "--model", "beta")
    assert unloaded.returncode == 0 and unloaded.stdout.startswith("beta: unload done, now unloaded")
    assert router.statuses()["beta"] == "unloaded"

    broken = cli(config, "load", "--model", "broken")
    assert broken.returncode == 1 and "broken: load failed, now failed (exit code" in broken.stdout
    unknown = cli(config, "load", "--model", "nope")
    assert unknown.returncode == 1
    assert "the router has no model 'nope'; it has: alpha, beta, broken" in unknown.stderr
    unnamed = cli(config, "unload")
    assert unnamed.returncode == 2 and "--model NAME" in unnamed.stderr


def said(notices: Any, start: str) -> bool:
    return any(n.message.startswith(start) for n in notices.shown)


async def test_r_in_router_mode_loads_and_unloads_one_model(router: Router, tmp_path: Path) -> None:
    """The dashboard (--attach, no proxy) on a router: `r` lists the models; load runs, unload asks first."""
    from support.notices import Notices
    from test_ui_actions import cancel_focused
    from textual.widgets import OptionList

    from tui.ui.app import make_app
    from tui.ui.screens.dialogs import ConfirmDialog, PickDialog

    settings = Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{free_port()}", upstream=router.url),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        server=ServerSettings(url=router.url, poll_interval=0.3),  # no [server] model: a router needs none
    )
    app = make_app(DashboardFeed(LiveDriver(settings, attach=True)), settings)
    notices = Notices()
    async with app.run_test(size=(140, 40), message_hook=notices) as pilot:
        main = app.main_screen
        await eventually(lambda: main.server is not None and main.server.router)
        assert main.reason("restart_server") is None

        await pilot.press("r")
        await eventually(lambda: isinstance(app.screen, PickDialog))
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert labels[:3] == ["load alpha (unloaded)", "load beta (unloaded)", "load broken (unloaded)"]
        assert labels[-1].startswith("restart the whole router")
        await pilot.press("down", "enter")  # load beta: nothing stops, so it runs at once
        await eventually(lambda: said(notices, "beta: load done"), timeout=60)
        assert router.statuses()["beta"] == "loaded"

        await eventually(lambda: {m.id: m.status for m in main.server.models}.get("beta") == "loaded")  # type: ignore[union-attr]
        await pilot.press("r")
        await eventually(lambda: isinstance(app.screen, PickDialog))
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert "unload beta (loaded, 2×2,048)" in labels
        for _ in range(labels.index("unload beta (loaded, 2×2,048)")):
            await pilot.press("down")
        await pilot.press("enter")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        await pilot.press("enter")  # Cancel: nothing happens
        await pilot.pause(0.3)
        assert router.statuses()["beta"] == "loaded"

        await pilot.press("r")
        await eventually(lambda: isinstance(app.screen, PickDialog))
        for _ in range(labels.index("unload beta (loaded, 2×2,048)")):
            await pilot.press("down")
        await pilot.press("enter")
        await eventually(lambda: cancel_focused(app, ConfirmDialog))
        await pilot.press("tab", "enter")  # Unload
        shown = lambda: [n.message for n in notices.shown]  # noqa: E731 - what the failure message lists
        await eventually(lambda: said(notices, "beta: unload done"), timeout=60, seen=shown)
        assert router.statuses()["beta"] == "unloaded"


@pytest.mark.parametrize("log", [True, False], ids=["router-log", "no-log"])
async def test_an_eviction_in_router_mode_is_explained_from_the_models_own_child(
    llama_server_bin: Path, tmp_path: Path, log: bool
) -> None:
    """Two sessions on model alpha take turns on its slot 0 (no host cache), with a request to model beta
    in between: the router's log holds each child's lines under its port, and the explanation comes from
    alpha's child alone (beta's request ran on beta's slot 0, a slot of another server, and is not named).
    With no log, from the `/slots?model=alpha` polls alone."""
    args = ("-c", "8192", "-np", "2", "-t", "1", "--cache-ram", "0")
    with running_router(llama_server_bin, tmp_path, *args) as router:
        port = free_port()
        config = Settings(
            proxy=ProxySettings(listen=f"127.0.0.1:{port}", upstream=router.url),
            journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
            server=ServerSettings(url=router.url, log_file=str(router.log) if log else "", poll_interval=0.5),
        )
        _, updates, task = await start_feed(config)
        proxy = f"http://127.0.0.1:{port}"
        reader = JournalReader(config.journal_path())
        one, two = Conversation("one", 1, "alpha"), Conversation("two", 500, "alpha")
        other = Conversation("other", 900, "beta")
        try:
            for conversation in (one, other, two, one):
                await conversation.turn(proxy, 0)
                # An agent's turns are seconds apart; the tiny model's take milliseconds: let the
                # dashboard poll /slots between them, as it would between real turns.
                start = len(updates)
                await eventually(
                    lambda: sum(isinstance(u, ServerSnapshot) for u in updates[start:]) >= 2,  # noqa: B023
                    timeout=15,
                    what="two server polls after the turn",
                )
            _, stored = await explained_and_stored(
                updates,
                reader,
                seen=lambda: [(r.id, r.model, r.session_id, r.cache_break) for r in reader.latest(10)],
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    rows = [r for r in reader.latest(10) if r.status == 200]
    assert [(r.model, r.session_id) for r in rows] == [
        ("alpha", "one"), ("beta", "other"), ("alpha", "two"), ("alpha", "one")
    ], rows
    first, _, middle, second = rows
    assert stored.id == second.id and first.usage.prompt_tokens is not None
    cb = stored.cache_break
    assert cb is not None and cb.cause == "server" and cb.where == "slot 0"
    lost = first.usage.prompt_tokens - (second.usage.cached_tokens or 0)
    assert (second.usage.cached_tokens or 0) < first.usage.prompt_tokens // 2
    assert cb.description.startswith("evicted: slot 0 ran session two's main request (task "), cb.description
    host = (  # at the router's default verbosity its children do not log the host cache's settings
        "the host prompt cache did not restore it (--cache-ram off, or its limits too small for this prompt)"
        if log
        else "the host prompt cache did not restore it (no server log is followed to tell why)"
    )
    assert cb.description.endswith(
        f" in between, and {host}: {lost:,} tokens of this conversation's cache lost"
    ), cb.description
    assert "other" not in cb.description and middle.session_id == "two"
    log_ok = any(isinstance(u, SourceStatus) and u.source == "log" and u.health == "ok" for u in updates)
    assert log_ok == log
