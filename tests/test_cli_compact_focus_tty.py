"""`c` with a focus in a real terminal: the console script types `/compact <focus>` into the agent's pane."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_actions_tmux import wait_for
from test_cli_compact_tty import socket, start_agent_and_dashboard, tmux, wait_for_screen  # noqa: F401

pytestmark = [pytest.mark.timeout(120)]
FOCUS = "keep the failing test in api.py"
# Keys typed in the same instant as the shift-tab reach the widget focused before it (no person types
# that fast): a short pause, as between a person's keystrokes. Not an assertion.
TYPING_PAUSE_S = 0.5


def test_c_with_focus_in_pane_mode_types_compact_and_the_focus(tmp_path: Path, socket: str) -> None:  # noqa: F811
    record = start_agent_and_dashboard(tmp_path, socket, "claude", "pane")
    tmux(socket, "send-keys", "-t", "dash", "c")
    wait_for_screen(socket, "dash", "●▌ pane: type /compact", "focus (optional)")
    tmux(socket, "send-keys", "-t", "dash", "BTab")  # from Cancel back to the focus field
    time.sleep(TYPING_PAUSE_S)
    tmux(socket, "send-keys", "-t", "dash", "-l", FOCUS)
    wait_for_screen(socket, "dash", FOCUS)
    tmux(socket, "send-keys", "-t", "dash", "Enter")  # the field hands over to Compact
    tmux(socket, "send-keys", "-t", "dash", "Enter")
    assert wait_for(record, FOCUS).splitlines()[-1] == f"/compact {FOCUS}"
    wait_for_screen(socket, "dash", "sent /compact keep the")  # the toast wraps the rest


def test_escape_in_the_focus_field_cancels(tmp_path: Path, socket: str) -> None:  # noqa: F811
    record = start_agent_and_dashboard(tmp_path, socket, "claude", "pane")
    tmux(socket, "send-keys", "-t", "dash", "c")
    wait_for_screen(socket, "dash", "focus (optional)")
    tmux(socket, "send-keys", "-t", "dash", "BTab")
    time.sleep(TYPING_PAUSE_S)
    tmux(socket, "send-keys", "-t", "dash", "-l", FOCUS)
    wait_for_screen(socket, "dash", FOCUS)
    tmux(socket, "send-keys", "-t", "dash", "Escape")
    screen = wait_for_screen(socket, "dash", "Quit")
    assert "focus (optional)" not in screen
    assert "/compact" not in record.read_text()
