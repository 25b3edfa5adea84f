"""Pane compaction against a real tmux server with a stand-in `claude` that records what it reads."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import libtmux
import pytest
from support.eventually import eventually_sync

from tui.core.actions.tmux_compact import (
    PaneError,
    find_agent_panes,
    make_server,
    resolve_pane,
    send_compact,
)

STAND_IN = """#!{python}
import sys
with open({record!r}, "a") as out:
    out.write("ready\\n")
    out.flush()
    for line in sys.stdin:
        out.write(line)
        out.flush()
"""


@pytest.fixture
def tmux() -> Iterator[libtmux.Server]:
    server = libtmux.Server(socket_name=f"test-{uuid.uuid4().hex[:12]}")
    yield server
    if server.is_alive():
        server.kill()


def stand_in(folder: Path, name: str = "claude") -> tuple[Path, Path]:
    """An executable named like the agent that appends every input line to a record file."""
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "input.txt"
    script = folder / name
    script.write_text(STAND_IN.format(python=sys.executable, record=str(record)))
    script.chmod(0o755)
    return script, record


def wait_for(path: Path, needle: str, timeout: float = 10.0) -> str:
    """The file's text once it holds `needle`."""
    return eventually_sync(
        lambda: text if needle in (text := path.read_text() if path.exists() else "") else "",
        timeout=timeout,
        what=f"{needle!r} in {path}",
        seen=lambda: path.read_text() if path.exists() else "<none>",
    )


def test_send_compact_finds_the_agent_pane(tmux: libtmux.Server, tmp_path: Path) -> None:
    script, record = stand_in(tmp_path / "agent")
    session = tmux.new_session("work", window_command=str(script), attach=False)
    session.new_window("shell", window_shell="cat", attach=False)
    wait_for(record, "ready")
    pane = send_compact(socket_name=tmux.socket_name)
    assert pane.agent_pid is not None and pane.target.startswith("work:")
    lines = wait_for(record, "/compact").splitlines()
    assert lines[-1] == "/compact"


def test_configured_pane_wins_and_ambiguity_lists_candidates(tmux: libtmux.Server, tmp_path: Path) -> None:
    first, first_record = stand_in(tmp_path / "one")
    second, second_record = stand_in(tmp_path / "two")
    session = tmux.new_session("work", window_command=str(first), attach=False)
    window = session.new_window("two", window_shell=f"sh -c '{second}; sleep 30'", attach=False)
    wait_for(first_record, "ready")
    wait_for(second_record, "ready")
    assert len(find_agent_panes(make_server(tmux.socket_name))) == 2
    with pytest.raises(PaneError, match="2 panes run 'claude'") as info:
        resolve_pane(make_server(tmux.socket_name))
    assert len(info.value.candidates) == 2

    target_pane = window.active_pane
    assert target_pane is not None and target_pane.pane_id is not None
    used = send_compact(target_pane.pane_id, socket_name=tmux.socket_name)
    assert used.pane_id == target_pane.pane_id and used.agent_pid is not None
    wait_for(second_record, "/compact")
    assert "/compact" not in first_record.read_text()

    used = send_compact(f"work:{session.windows[0].window_index}.0", socket_name=tmux.socket_name)
    wait_for(first_record, "/compact")


def test_no_agent_pane_is_a_clear_error(tmux: libtmux.Server) -> None:
    tmux.new_session("work", window_command="cat", attach=False)
    with pytest.raises(PaneError, match="no tmux pane runs 'claude'") as info:
        send_compact(socket_name=tmux.socket_name)
    assert [p.command for p in info.value.candidates] == ["cat"]
    # It names what runs in each pane and how to point it at an agent running under another name.
    assert "[compact] agent_command" in str(info.value) and "(cat)" in str(info.value)
    with pytest.raises(PaneError, match="not found"):
        send_compact("nosuch:9.9", socket_name=tmux.socket_name)
