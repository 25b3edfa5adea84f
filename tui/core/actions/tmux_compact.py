"""Pane compaction: type `/compact` and Enter into the tmux pane where the coding agent runs."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from tui.core import procfs

DEFAULT_AGENT = "claude"
COMPACT_COMMAND = "/compact"
# How the npm package runs Claude Code: a native `claude.exe`, or node on the package's cli.js.
CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
TMUX_TIMEOUT_S = 10.0
_PANE_FORMAT = "\t".join(
    ("#{pane_id}", "#{session_name}:#{window_index}.#{pane_index}", "#{pane_current_command}", "#{pane_pid}")
)


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


@dataclass(frozen=True)
class TmuxServer:
    """The tmux server on the default socket ($TMUX when inside tmux) or `tmux -L socket_name`.

    Plain `tmux` subprocesses, not libtmux: libtmux reads `sys.stdout.encoding` when first imported,
    which fails inside the dashboard, where Textual has replaced `sys.stdout`.
    """

    socket_name: str | None = None

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one tmux command; PaneError when tmux is missing or hangs."""
        command = ["tmux", *(["-L", self.socket_name] if self.socket_name else []), *args]
        try:
            return subprocess.run(
                command, capture_output=True, text=True, timeout=TMUX_TIMEOUT_S, stdin=subprocess.DEVNULL
            )
        except FileNotFoundError as exc:
            raise PaneError("tmux is not installed (pane compaction needs the agent inside tmux)") from exc
        except subprocess.TimeoutExpired as exc:
            raise PaneError(f"tmux did not answer within {TMUX_TIMEOUT_S:.0f} s") from exc

    def is_alive(self) -> bool:
        """Whether a tmux server answers on this socket."""
        try:
            return self.run("list-sessions").returncode == 0
        except PaneError:
            return False


def is_agent(pid: int, agent: str = DEFAULT_AGENT) -> bool:
    """Whether a process is the agent: comm, argv[0] or argv[1] (`.exe` or not), or Claude Code's cli.js."""
    argv = procfs.command_line(pid)
    names = {procfs.process_name(pid), *(os.path.basename(a) for a in argv[:2])}
    if agent in names or f"{agent}.exe" in names:
        return True
    return agent == DEFAULT_AGENT and any(
        CLAUDE_CODE_PACKAGE in arg and arg.endswith(".js") for arg in argv[1:3]
    )


def agent_pid_in(pane_pid: int | None, agent: str) -> int | None:
    """The pid of the agent among the pane's process and its descendants, if it runs there."""
    if not pane_pid:
        return None
    for pid in (pane_pid, *procfs.descendants(pane_pid)):
        if is_agent(pid, agent):
            return pid
    return None


def make_server(socket_name: str | None = None) -> TmuxServer:
    """The tmux server (default socket, or `tmux -L NAME`)."""
    return TmuxServer(socket_name)


def list_panes(server: TmuxServer, agent: str = DEFAULT_AGENT) -> list[PaneInfo]:
    """Every pane of the server, with the agent pid where the agent runs."""
    out = server.run("list-panes", "-a", "-F", _PANE_FORMAT)
    if out.returncode != 0:
        detail = out.stderr.strip() or f"tmux exited {out.returncode}"
        raise PaneError(f"cannot list tmux panes: {detail}")
    panes: list[PaneInfo] = []
    for line in out.stdout.splitlines():
        fields = line.split("\t")
        if len(fields) != 4:
            continue
        pane_id, target, command, pid_text = fields
        pid = int(pid_text) if pid_text.isdigit() else None
        panes.append(PaneInfo(pane_id, target, command, pid, agent_pid_in(pid, agent)))
    return panes


def find_agent_panes(server: TmuxServer, agent: str = DEFAULT_AGENT) -> list[PaneInfo]:
    """Panes whose current command, or a child process, is the agent."""
    names = (agent, f"{agent}.exe")
    return [p for p in list_panes(server, agent) if p.command in names or p.agent_pid is not None]


def resolve_pane(server: TmuxServer, spec: str = "", agent: str = DEFAULT_AGENT) -> PaneInfo:
    """The configured pane (`%3`, `session:window.pane`, any tmux target), else the one agent pane."""
    if spec:
        out = server.run("display-message", "-p", "-t", spec, "#{pane_id}")
        pane_id = out.stdout.strip() if out.returncode == 0 else ""
        for pane in list_panes(server, agent):
            if pane.pane_id == pane_id:
                return pane
        detail = out.stderr.strip() or "no such pane"
        raise PaneError(f"tmux pane {spec!r} not found ({detail})", find_agent_panes(server, agent))
    found = find_agent_panes(server, agent)
    if len(found) == 1:
        return found[0]
    if not found:
        others = list_panes(server, agent) if server.is_alive() else []
        listed = "; ".join(p.describe() for p in others) or "no tmux panes"
        raise PaneError(
            f"no tmux pane runs {agent!r}; pick one, or set [compact] pane (e.g. \"work:1.0\" or \"%3\") "
            f"or [compact] agent_command if the agent runs under another name. Panes: {listed}",
            others,
        )
    listed = "; ".join(p.describe() for p in found)
    raise PaneError(
        f"{len(found)} panes run {agent!r}: {listed}; pick one with [compact] pane or --pane", found
    )


def compact_command(focus: str = "") -> str:
    """`/compact`, or `/compact <focus>` with the focus on one line (a newline would send it early)."""
    focus = " ".join(focus.split())
    return f"{COMPACT_COMMAND} {focus}" if focus else COMPACT_COMMAND


def send_compact(
    spec: str = "",
    *,
    agent: str = DEFAULT_AGENT,
    socket_name: str | None = None,
    command: str = COMPACT_COMMAND,
    server: TmuxServer | None = None,
) -> PaneInfo:
    """Type the command into the agent's pane and press Enter; returns the pane used."""
    tmux = server or make_server(socket_name)
    if not tmux.is_alive():
        raise PaneError("no tmux server is running (pane compaction needs the agent inside tmux)")
    pane = resolve_pane(tmux, spec, agent)
    # Text and Enter go separately so the agent's TUI does not treat them as one pasted line.
    for keys in (("-l", command), ("Enter",)):
        out = tmux.run("send-keys", "-t", pane.pane_id, *keys)
        if out.returncode != 0:
            raise PaneError(f"tmux pane {pane.pane_id}: {out.stderr.strip() or 'send-keys failed'}")
    return pane
