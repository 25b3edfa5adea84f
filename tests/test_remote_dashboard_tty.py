"""`ctxbudget --connect URL` in a real terminal (tmux) against a real `ctxbudget serve`.

The header names the serve host; stopping serve shows "disconnected … retrying"; a serve started again on
the same port is picked up; q quits with 0; the token (read from --token-file) never reaches the screen.
"""

from __future__ import annotations

from pathlib import Path

from support.eventually import eventually_sync
from support.llama import free_port
from support.serve_process import start_serve
from test_cli_dashboard_tty import dashboard_in_tmux, screen_of, start_dashboard, tmux, wait_for_screen
from test_serve_auth import empty_config

from tui.core.serve.auth import load_or_create_token

__all__ = ["dashboard_in_tmux"]  # the fixture, imported from the tty tests


def test_connect_in_a_terminal_reconnects_after_serve_restarts(
    tmp_path: Path, dashboard_in_tmux: tuple[str, Path]
) -> None:
    socket, config = dashboard_in_tmux
    token = load_or_create_token()
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    box = tmp_path / "box"
    box.mkdir()
    port = free_port()
    serve = start_serve(empty_config(box), box, port=port)
    try:
        exit_file = start_dashboard(
            socket, config, tmp_path, f"--connect http://127.0.0.1:{port} --token-file {token_file}"
        )
        wait_for_screen(socket, f"remote 127.0.0.1:{port}")
        serve.stop()
        screen = wait_for_screen(socket, "disconnected from", timeout=40)
        assert "retrying in" in screen
        serve = start_serve(empty_config(box), box, port=port)
        eventually_sync(
            lambda: "disconnected" not in screen_of(socket),
            timeout=40,
            what="reconnected",
            seen=lambda: screen_of(socket),
        )
        assert token not in screen_of(socket)
        tmux(socket, "send-keys", "-t", "dash", "q")
        eventually_sync(exit_file.exists, timeout=15, what="the exit", seen=lambda: screen_of(socket))
        assert exit_file.read_text().strip() == "0", screen_of(socket)
    finally:
        serve.stop()
