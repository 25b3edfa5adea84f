"""Headless `ctxbudget proxy` polls [server] url like the dashboard, so the server gauges and alerts work."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.llama import RunningServer, free_port

pytestmark = pytest.mark.timeout(180)

WAIT_S = 60.0


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(url + "/_ctxbudget/metrics", timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def start_headless(server_url: str, tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    """`ctxbudget proxy --quiet` with [server] url = server_url; returns it once it listens."""
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nurl = "{server_url}"\npoll_interval = 0.5\n')
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTXBUDGET")}
    env.update(CTXBUDGET_CONFIG=str(config), XDG_DATA_HOME=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "proxy", "--quiet", "--listen", f"127.0.0.1:{port}",
         "--upstream", server_url, "--journal", str(tmp_path / "j.sqlite3")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=env,
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    assert "listening on" in banner, banner
    return proc, f"http://127.0.0.1:{port}"


def wait_for_state(url: str, state: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Scrape until ctxbudget_server_state{state} is 1 (a poll happened); the last scrape."""
    deadline = time.monotonic() + WAIT_S
    got = scrape(url)
    while got[("ctxbudget_server_state", frozenset({("state", state)}))] != 1:
        assert time.monotonic() < deadline, f"server state never {state}: {got}"
        time.sleep(0.2)
        got = scrape(url)
    return got


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=30)
    assert proc.returncode == 0


@pytest.mark.llama
def test_headless_proxy_feeds_server_gauges(shared_llama_server: RunningServer, tmp_path: Path) -> None:
    proc, url = start_headless(shared_llama_server.url, tmp_path)
    try:
        got = wait_for_state(url, "up")
        assert got[("ctxbudget_server_state", frozenset({("state", "down")}))] == 0
        assert got[("ctxbudget_server_slots", frozenset())] >= 1
        assert got[("ctxbudget_server_slot_ctx_tokens", frozenset())] > 0
        assert ("ctxbudget_slot_fill_ratio", frozenset({("slot", "0")})) in got
        assert got[("ctxbudget_server_last_poll_timestamp_seconds", frozenset())] > 0
    finally:
        stop(proc)


def test_headless_proxy_reports_a_down_server(tmp_path: Path) -> None:
    """The README's `ctxbudget_server_state{state="down"} == 1` alert can fire without the dashboard."""
    proc, url = start_headless(f"http://127.0.0.1:{free_port()}", tmp_path)
    try:
        got = wait_for_state(url, "down")
        assert got[("ctxbudget_server_state", frozenset({("state", "up")}))] == 0
    finally:
        stop(proc)


@pytest.mark.llama
def test_dashboard_proxy_process_feeds_server_gauges(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    """The dashboard's proxy child takes the dashboard's polls: its metrics (and compaction's n_ctx)
    follow the server without polling it a second time."""
    import asyncio

    from tui.core.config import JournalSettings, ProxySettings, ServerSettings, Settings
    from tui.core.feed.proxy_child import server_message, settings_message
    from tui.core.poll.server_poller import ServerPoller

    async def poll_once() -> bytes:
        poller = ServerPoller(shared_llama_server.url, "")
        try:
            return server_message(await poller.poll_once())
        finally:
            await poller.aclose()

    port = free_port()
    settings = Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{port}", upstream=shared_llama_server.url),
        journal=JournalSettings(path=str(tmp_path / "j.sqlite3")),
        server=ServerSettings(url=shared_llama_server.url, poll_interval=0.5),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTXBUDGET")}
    env.update(XDG_DATA_HOME=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui.core.feed.proxy_child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(settings_message(settings, tmp_path / "j.sqlite3"))
        proc.stdin.flush()
        assert b"listening" in proc.stdout.readline()
        proc.stdin.write(asyncio.run(poll_once()))  # what the dashboard's poller passes on
        proc.stdin.flush()
        got = wait_for_state(f"http://127.0.0.1:{port}", "up")
        assert got[("ctxbudget_server_slots", frozenset())] >= 1
    finally:
        proc.stdin.close()  # the dashboard gone: the child stops
        proc.wait(timeout=30)
