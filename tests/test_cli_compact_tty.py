"""`c` in a real terminal: the console script in one tmux pane types /compact into the agent's pane."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.eventually import eventually_sync
from test_actions_tmux import stand_in, wait_for
from test_cli_dashboard_tty import free_port

pytestmark = [pytest.mark.timeout(120)]
CONSOLE_SCRIPT = Path(sys.executable).with_name("ctxbudget")


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], check=True, capture_output=True, text=True).stdout


def screen_of(socket: str, target: str) -> str:
    return tmux(socket, "capture-pane", "-p", "-t", target)


def wait_for_screen(socket: str, target: str, *needles: str, timeout: float = 40.0) -> str:
    """The pane's screen once it shows every needle (a redraw may be caught half done)."""
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = screen_of(socket, target)
        if all(needle in screen for needle in needles):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{needles!r} never appeared in {target}; screen:\n{screen}")


@pytest.fixture
def socket() -> Iterator[str]:
    assert shutil.which("tmux"), "tmux is needed for this test (CI installs it)"
    name = f"ctxbudget-compact-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True)


def start_agent_and_dashboard(tmp_path: Path, socket: str, agent_name: str, mode: str) -> Path:
    """A stand-in agent in pane `agent`, the console script (embedded proxy) in pane `dash`; the record."""
    assert CONSOLE_SCRIPT.is_file(), f"console script missing: {CONSOLE_SCRIPT} (pip install -e .)"
    script, record = stand_in(tmp_path / "agent", agent_name)
    tmux(socket, "new-session", "-d", "-s", "agent", "-x", "100", "-y", "20", str(script))
    wait_for(record, "ready")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nurl = "http://127.0.0.1:9"\n[journal]\npath = "{tmp_path}/j.sqlite3"\n'
        f'[compact]\nmode = "{mode}"\n'
    )
    port = free_port()
    # The dashboard runs inside the same tmux server and finds it through $TMUX, as a user's would.
    dashboard = (
        f"cd {tmp_path} && {CONSOLE_SCRIPT} --config {config} --listen 127.0.0.1:{port} "
        f"--upstream http://127.0.0.1:9; sleep 60"
    )
    tmux(socket, "new-session", "-d", "-s", "dash", "-x", "120", "-y", "40", dashboard)
    wait_for_screen(socket, "dash", "Quit")
    # The embedded proxy is a child process: proxy mode is offered once its control API answers.
    eventually_sync(lambda: proxy_answers(port), what="the dashboard's proxy answering")
    return record


def proxy_answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/_ctxbudget/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False



@pytest.mark.parametrize("agent_name", ["claude", "claude.exe"])
def test_c_in_pane_mode_types_compact_into_the_agent_pane(
    tmp_path: Path, socket: str, agent_name: str
) -> None:
    record = start_agent_and_dashboard(tmp_path, socket, agent_name, "pane")
    tmux(socket, "send-keys", "-t", "dash", "c")
    # Pane is preselected and only it renders selected; proxy mode is offered and not selected.
    screen = wait_for_screen(socket, "dash", "●▌ pane: type /compact", "○▌ proxy: summarise")
    assert "'claude' runs in tmux pane agent:0.0" in screen
    assert "tmux:" not in screen  # the old libtmux import error
    tmux(socket, "send-keys", "-t", "dash", "Tab")
    tmux(socket, "send-keys", "-t", "dash", "Enter")
    assert wait_for(record, "/compact").splitlines()[-1] == "/compact"
    wait_for_screen(socket, "agent", "/compact")  # the text arrived in the agent's terminal
    wait_for_screen(socket, "dash", "sent /compact to tmux pane")


def test_agent_found_as_node_running_claude_codes_cli_js(tmp_path: Path, socket: str) -> None:
    package = tmp_path / "node_modules" / "@anthropic-ai" / "claude-code"
    script, record = stand_in(package, "cli.js")
    # argv: interpreter, then the package's cli.js, as `node .../cli.js` runs it.
    tmux(socket, "new-session", "-d", "-s", "agent", f"{sys.executable} {script}")
    wait_for(record, "ready")
    from tui.core.actions.tmux_compact import send_compact

    pane = send_compact(socket_name=socket)
    assert pane.target.startswith("agent:") and pane.agent_pid is not None
    assert wait_for(record, "/compact").splitlines()[-1] == "/compact"


def test_pane_chosen_in_the_dialog_is_the_mode_that_runs(tmp_path: Path, socket: str) -> None:
    """[compact] mode = proxy preselects proxy; choosing pane with the keyboard types /compact."""
    record = start_agent_and_dashboard(tmp_path, socket, "claude", "proxy")
    tmux(socket, "send-keys", "-t", "dash", "c")
    wait_for_screen(socket, "dash", "○▌ pane: type /compact", "●▌ proxy: summarise")
    for key in ("BTab", "BTab", "Up", "Enter"):  # past the focus field to the modes, onto pane, select it
        tmux(socket, "send-keys", "-t", "dash", key)
    wait_for_screen(socket, "dash", "●▌ pane: type /compact", "○▌ proxy: summarise")
    for key in ("Tab", "Tab", "Tab", "Enter"):  # focus field, Cancel, Compact, press
        tmux(socket, "send-keys", "-t", "dash", key)
    assert wait_for(record, "/compact").splitlines()[-1] == "/compact"
    wait_for_screen(socket, "dash", "sent /compact to tmux pane")
