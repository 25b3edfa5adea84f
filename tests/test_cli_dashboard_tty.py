"""The console script opens the dashboard in a real terminal (tmux): `ctxbudget demo` and `--attach`."""

from __future__ import annotations

import shutil
import socket as socket_module
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], check=True, capture_output=True, text=True).stdout


def free_port() -> int:
    with socket_module.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_screen(socket: str, needle: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux(socket, "capture-pane", "-p", "-t", "dash")
        if needle in screen:
            return screen
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} never appeared; screen:\n{screen}")


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
    tmp_path: Path, args: list[str], needle: str
) -> None:
    assert shutil.which("tmux"), "tmux is needed for this test (CI installs it)"
    socket = f"ctxbudget-test-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.toml"
    config.write_text(f'[server]\nurl = "http://127.0.0.1:9"\n[journal]\npath = "{tmp_path}/j.sqlite3"\n')
    exit_file = tmp_path / "exit"
    port = free_port()
    argv = " ".join(a.replace("{tmp}", str(tmp_path)).replace("{port}", str(port)) for a in args)
    needle = needle.replace("{port}", str(port))
    # Textual draws on stderr, so it is left on the terminal.
    command = (
        f"cd {tmp_path} && {sys.executable} -m tui --config {config} {argv}; echo $? > {exit_file}; sleep 60"
    )
    tmux(socket, "new-session", "-d", "-s", "dash", "-x", "100", "-y", "30", command)
    try:
        screen = wait_for_screen(socket, needle)
        assert "Quit" in screen  # the footer is drawn
        tmux(socket, "send-keys", "-t", "dash", "q")
        deadline = time.monotonic() + 15
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert exit_file.read_text().strip() == "0", tmux(socket, "capture-pane", "-p", "-t", "dash")
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)
