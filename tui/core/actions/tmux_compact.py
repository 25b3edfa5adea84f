"""Pane compaction: type `/compact` and Enter into the tmux pane where the coding agent runs."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # libtmux loads at first use: the dashboard imports this module at start
    import libtmux

from tui.core.actions import processes

DEFAULT_AGENT = "claude"
COMPACT_COMMAND = "/compact"


class PaneError(RuntimeError):
    """No single agent pane could be chosen; `candidates` lists the panes the user may pick from."""

    def __init__(self, message: str, candidates: Sequence[PaneInfo] = ()) -> None:
        super().__init__(message)
        self.candidates = tuple(candidates)


@dataclass(frozen=True)
class PaneInfo:
    """One tmux pane: its id, its `session:window.pane` target and what runs in it."""

    pane_id: str
    target: str
    command: str
    pid: int | None
    agent_pid: int | None = None

    def describe(self) -> str:
        """`%3 work:1.0 (claude)`."""
        return f"{self.pane_id} {self.target} ({self.command})"


def _names(pid: int) -> set[str]:
    """Names a process goes by: comm, argv[0] and, for scripts, argv[1] (basenames)."""
    argv = processes.command_line(pid)
    names = {processes.process_name(pid)}
    names.update(os.path.basename(a) for a in argv[:2])
    names.discard("")
    return names


def agent_pid_in(pane_pid: int | None, agent: str) -> int | None:
    """The pid of the agent among the pane's process and its descendants, if it runs there."""
    if not pane_pid:
        return None
    for pid in (pane_pid, *processes.descendants(pane_pid)):
        if agent in _names(pid):
            return pid
    return None


def _info(pane: Any, agent: str) -> PaneInfo:
    pid = int(pane.pane_pid) if pane.pane_pid else None
    target = f"{pane.session_name}:{pane.window_index}.{pane.pane_index}"
    return PaneInfo(
        str(pane.pane_id), target, str(pane.pane_current_command or ""), pid, agent_pid_in(pid, agent)
    )


def make_server(socket_name: str | None = None) -> libtmux.Server:
    """The tmux server (default socket, or `tmux -L NAME`)."""
    import libtmux

    return libtmux.Server(socket_name=socket_name) if socket_name else libtmux.Server()


def list_panes(server: libtmux.Server, agent: str = DEFAULT_AGENT) -> list[PaneInfo]:
    """Every pane of the server, with the agent pid where the agent runs."""
    from libtmux.exc import LibTmuxException

    try:
        panes = list(server.panes)
    except LibTmuxException as exc:
        raise PaneError(f"cannot list tmux panes: {exc}") from exc
    return [_info(p, agent) for p in panes]


def find_agent_panes(server: libtmux.Server, agent: str = DEFAULT_AGENT) -> list[PaneInfo]:
    """Panes whose current command, or a child process, is the agent."""
    return [p for p in list_panes(server, agent) if p.command == agent or p.agent_pid is not None]


def resolve_pane(server: libtmux.Server, spec: str = "", agent: str = DEFAULT_AGENT) -> PaneInfo:
    """The configured pane (`%3`, `session:window.pane`, any tmux target), else the one agent pane."""
    if spec:
        from libtmux.exc import LibTmuxException

        try:
            out = server.cmd("display-message", "-p", "-t", spec, "#{pane_id}")
        except LibTmuxException as exc:
            raise PaneError(f"tmux pane {spec!r}: {exc}") from exc
        pane_id = out.stdout[0].strip() if out.stdout and not out.stderr else ""
        for pane in list_panes(server, agent):
            if pane.pane_id == pane_id:
                return pane
        detail = " ".join(out.stderr) if out.stderr else "no such pane"
        raise PaneError(f"tmux pane {spec!r} not found ({detail})", find_agent_panes(server, agent))
    found = find_agent_panes(server, agent)
    if len(found) == 1:
        return found[0]
    if not found:
        others = list_panes(server, agent) if _server_alive(server) else []
        listed = "; ".join(p.describe() for p in others) or "no tmux panes"
        raise PaneError(
            f'no tmux pane runs {agent!r}; set [compact] pane (e.g. "work:1.0" or "%3"). Panes: {listed}',
            others,
        )
    listed = "; ".join(p.describe() for p in found)
    raise PaneError(
        f"{len(found)} panes run {agent!r}: {listed}; pick one with [compact] pane or --pane", found
    )


def _server_alive(server: libtmux.Server) -> bool:
    from libtmux.exc import LibTmuxException

    try:
        return bool(server.is_alive())
    except LibTmuxException:
        return False


def send_compact(
    spec: str = "",
    *,
    agent: str = DEFAULT_AGENT,
    socket_name: str | None = None,
    command: str = COMPACT_COMMAND,
    server: libtmux.Server | None = None,
) -> PaneInfo:
    """Type the command into the agent's pane and press Enter; returns the pane used."""
    tmux = server or make_server(socket_name)
    if not _server_alive(tmux):
        raise PaneError("no tmux server is running (pane compaction needs the agent inside tmux)")
    pane = resolve_pane(tmux, spec, agent)
    target = tmux.panes.get(pane_id=pane.pane_id)
    if target is None:
        raise PaneError(f"tmux pane {pane.pane_id} went away")
    # Text and Enter go separately so the agent's TUI does not treat them as one pasted line.
    target.send_keys(command, enter=False, literal=True)
    target.send_keys("Enter", enter=False)
    return pane
