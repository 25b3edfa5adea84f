"""Messages the action workers post to the main screen (workers never touch widgets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from tui.core.actions.server_control import ServerState, ServerStatus
    from tui.core.actions.tmux_compact import PaneInfo
    from tui.core.feed.control import ControlSnapshot
    from tui.ui.screens.restart_dialog import RestartRequest


class ControlChanged(Message):
    """A new answer (or non-answer) of the proxy's control API; only the newest waits."""

    def __init__(self, snapshot: ControlSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        """Coalesce polls."""
        return isinstance(message, ControlChanged)


class ActionResult(Message):
    """An action finished: what to tell the user."""

    def __init__(self, title: str, text: str, severity: str = "information") -> None:
        super().__init__()
        self.title = title
        self.text = text
        self.severity = severity


class CompactPrepared(Message):
    """Panes running the agent were looked up: the compaction dialog can open."""

    def __init__(self, panes: tuple[PaneInfo, ...], pane_note: str, proxy_ok: bool) -> None:
        super().__init__()
        self.panes = panes
        self.pane_note = pane_note
        self.proxy_ok = proxy_ok


class PaneChoiceNeeded(Message):
    """send_compact could not tell which pane: let the user pick one."""

    def __init__(self, problem: str, candidates: tuple[PaneInfo, ...], focus: str = "") -> None:
        super().__init__()
        self.problem = problem
        self.candidates = candidates
        self.focus = focus  # the compaction's focus text, typed after /compact once a pane is picked


class RestartPrepared(Message):
    """The server's status was read: the restart dialog can open."""

    def __init__(self, status: ServerStatus) -> None:
        super().__init__()
        self.status = status


class ServerProgress(Message):
    """One step of a restart: stopping, starting, loading, up or failed."""

    def __init__(self, state: ServerState) -> None:
        super().__init__()
        self.state = state


class RestartRefused(Message):
    """The doctor found a blocking problem in the planned launch; the user may force it."""

    def __init__(self, request: RestartRequest, reason: str) -> None:
        super().__init__()
        self.request = request
        self.reason = reason


class TransformsReady(Message):
    """The control state was read: the transforms screen can open."""

    def __init__(self, snapshot: ControlSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot
