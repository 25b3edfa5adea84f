"""The console script opens the dashboard in a real terminal (tmux): `ctxbudget demo`, `--attach`, embedded.

The tmux server these tests start is their own (`-L socket`, TMUX and TMUX_PANE unset), so they pass
when pytest itself runs inside a tmux pane.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from support.eventually import eventually_sync
from support.llama import free_port
from support.processes import alive, listening_pid, parent_pid

REPO = Path(__file__).resolve().parent.parent


def tmux_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for our own tmux server: without the TMUX variables of a pane pytest may run in."""
    return {k: v for k, v in environ.items() if k not in ("TMUX", "TMUX_PANE")}


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, *args], check=True, capture_output=True, text=True, env=tmux_env(os.environ)
    ).stdout


def screen_of(socket: str) -> str:
    return tmux(socket, "capture-pane", "-p", "-t", "dash")


def wait_for_screen(socket: str, needle: str, timeout: float = 30.0) -> str:
    return eventually_sync(
        lambda: screen if needle in (screen := screen_of(socket)) else "",
        timeout=timeout,
        what=f"{needle!r} on the screen",
        seen=lambda: screen_of(socket),
    )


@pytest.fixture
def dashboard_in_tmux(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A fresh tmux server (socket name) and a config file; the server is killed afterwards."""
    assert shutil.which("tmux"), "tmux is needed for this test (CI installs it)"
    socket = f"ctxbudget-test-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nurl = "http://127.0.0.1:9"\n[journal]\npath = "{tmp_path}/j.sqlite3"\n')
    try:
        yield socket, config
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, env=tmux_env(os.environ))


def start_dashboard(socket: str, config: Path, tmp_path: Path, argv: str) -> Path:
    """Run the console script in the tmux pane "dash"; the returned file gets its exit code."""
    exit_file = tmp_path / "exit"
    # Textual draws on stderr, so it is left on the terminal.
    command = (
        f"cd {tmp_path} && {sys.executable} -m tui --config {config} {argv}; echo $? > {exit_file}; sleep 60"
    )
    tmux(socket, "new-session", "-d", "-s", "dash", "-x", "100", "-y", "30", command)
    return exit_file


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["demo", "--speed", "0", "--once"], "tiny-swa.gguf"),
        (["--attach", "--journal", "{tmp}/none.sqlite3"], "requests"),
        (["--listen", "127.0.0.1:{port}", "--upstream", "http://127.0.0.1:9"], "127.0.0.1:{port}"),
    ],
    ids=["demo", "attach", "embedded-proxy"],
)
def test_console_script_shows_the_dashboard_and_quits_on_q(
    tmp_path: Path, dashboard_in_tmux: tuple[str, Path], args: list[str], needle: str
) -> None:
    socket, config = dashboard_in_tmux
    port = free_port()
    argv = " ".join(a.replace("{tmp}", str(tmp_path)).replace("{port}", str(port)) for a in args)
    exit_file = start_dashboard(socket, config, tmp_path, argv)
    screen = wait_for_screen(socket, needle.replace("{port}", str(port)))
    # The footer is drawn too: a capture can land between the header's and the footer's writes.
    screen = wait_for_screen(socket, "Quit", timeout=10)
    assert needle.replace("{port}", str(port)) in screen
    tmux(socket, "send-keys", "-t", "dash", "q")
    eventually_sync(exit_file.exists, timeout=15, what="the exit", seen=lambda: screen_of(socket))
    assert exit_file.read_text().strip() == "0", screen_of(socket)
    # The embedded proxy stops with the dashboard: nothing listens on its port any more.
    eventually_sync(lambda: listening_pid(port) is None, timeout=15, what=f"port {port} released")


def test_embedded_proxy_process_dies_with_a_killed_dashboard(
    tmp_path: Path, dashboard_in_tmux: tuple[str, Path]
) -> None:
    socket, config = dashboard_in_tmux
    port = free_port()
    start_dashboard(socket, config, tmp_path, f"--listen 127.0.0.1:{port} --upstream http://127.0.0.1:9")
    wait_for_screen(socket, f"127.0.0.1:{port}")
    proxy = eventually_sync(lambda: listening_pid(port), timeout=30, what=f"a proxy listening on {port}")
    dashboard = parent_pid(proxy)
    assert dashboard != proxy and "tui" in Path(f"/proc/{dashboard}/cmdline").read_text()
    os.kill(dashboard, signal.SIGKILL)
    eventually_sync(lambda: not alive(proxy), timeout=15, what=f"proxy process {proxy} gone")
    assert listening_pid(port) is None


def test_these_tests_pass_when_pytest_runs_inside_a_tmux_pane(tmp_path: Path) -> None:
    """People run the suite from tmux: the demo case above, run by a pytest inside a tmux pane, passes."""
    assert shutil.which("tmux"), "tmux is needed for this test (CI installs it)"
    outer = f"ctxbudget-outer-{uuid.uuid4().hex[:8]}"
    result = tmp_path / "inner-pytest.txt"
    inner = (
        f"cd {REPO} && {sys.executable} -m pytest -q -p no:cacheprovider "
        f"'tests/{Path(__file__).name}::test_console_script_shows_the_dashboard_and_quits_on_q[demo]' "
        f"> {tmp_path}/inner.log 2>&1; echo $? > {result}; sleep 60"
    )
    tmux(outer, "new-session", "-d", "-s", "outer", "-x", "120", "-y", "40", inner)
    try:
        eventually_sync(result.exists, timeout=90, what="the inner pytest finishing")
        log = (tmp_path / "inner.log").read_text()
        assert result.read_text().strip() == "0", log
        assert "1 passed" in log
    finally:
        subprocess.run(["tmux", "-L", outer, "kill-server"], capture_output=True, env=tmux_env(os.environ))
