"""Compaction and its undo: tmux pane /compact on this machine, or proxy-side through the control API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.screen import Screen

from tui.core.control.client import ControlClient, ControlError
from tui.ui import action_messages as am
from tui.ui.flows.control import ControlFlow
from tui.ui.flows.host import ActionView, Flow
from tui.ui.format import grouped
from tui.ui.screens.dialogs import ConfirmDialog, PickDialog

if TYPE_CHECKING:
    from tui.core.actions.tmux_compact import PaneInfo


class CompactFlow(Flow):
    """The agent runs where the dashboard runs (its tmux pane); the proxy may run on the serve host."""

    def __init__(self, screen: Screen[None], view: ActionView, control: ControlFlow) -> None:
        super().__init__(screen, view)
        self.control = control

    def _client(self) -> ControlClient:
        client = self.view.feed.driver.control_client()
        if client is None:
            raise ControlError("no proxy to act on")
        return client

    def start(self) -> None:
        """Look for the agent's tmux pane, then ask which mode."""
        self.in_thread(self._prepare, group="act", description="find agent pane")

    def _prepare(self) -> None:
        from tui.core.actions.tmux_compact import find_agent_panes, make_server

        compact = self.view.settings.compact
        panes: tuple[PaneInfo, ...] = ()
        try:
            server = make_server(compact.tmux_socket or None)
            panes = tuple(find_agent_panes(server, compact.agent_command)) if server.is_alive() else ()
            if compact.pane:
                note = f"pane {compact.pane} ([compact] pane)"
            elif panes:
                note = f"{compact.agent_command!r} runs in tmux pane " + ", ".join(p.target for p in panes)
            else:
                note = f"no tmux pane runs {compact.agent_command!r} (pane mode lists the panes to pick from)"
        except Exception as exc:  # tmux missing or its server unreadable: pane mode explains when tried
            note = f"tmux: {exc}"
        snapshot = self.control.read()
        self.screen.post_message(am.ControlChanged(snapshot))
        self.screen.post_message(am.CompactPrepared(panes, note, snapshot.answers))

    def prepared(self, message: am.CompactPrepared) -> None:
        """Open the dialog (default Cancel)."""
        from tui.ui.screens.compact_dialog import CompactDialog

        settings = self.view.settings.compact
        selected = self.view.selected
        dialog = CompactDialog(
            panes=len(message.panes) + bool(settings.pane),
            pane_note=message.pane_note,
            proxy_ok=message.proxy_ok,
            session=selected.session_id if selected is not None else "",
            keep_turns=settings.keep_turns,
            preferred=settings.mode,
        )
        self.screen.app.push_screen(
            dialog, lambda c: self.then(c is not None, self._start, c and c.mode, "", c and c.focus)
        )

    def _start(self, mode: str, pane: str, focus: str = "") -> None:
        selected = self.view.selected
        session = selected.session_id if selected is not None else None
        self.in_thread(self._run, mode, pane, session, focus, group="act", description="compact")

    def _run(self, mode: str, pane: str, session: str | None, focus: str = "") -> None:
        from tui.core.actions.tmux_compact import PaneError, compact_command, send_compact

        compact = self.view.settings.compact
        if mode == "pane":
            command = compact_command(focus)  # `/compact <focus>`: Claude Code's own way to aim it
            try:
                used = send_compact(
                    pane or compact.pane,
                    agent=compact.agent_command,
                    socket_name=compact.tmux_socket or None,
                    command=command,
                )
            except PaneError as exc:
                if exc.candidates:
                    self.screen.post_message(am.PaneChoiceNeeded(str(exc), exc.candidates, focus))
                else:
                    self.screen.post_message(am.ActionResult("compact", str(exc), "error"))
                return
            sent = f"sent {command} to tmux pane {used.describe()}"
            self.screen.post_message(am.ActionResult("compact", sent))
            return
        try:
            client = self._client()
            try:
                user = self.control.user()
                answer = client.compact(session or None, compact.keep_turns, user=user, focus=focus)
            except ControlError as exc:
                if exc.status != 409 or "no request seen" not in str(exc):
                    raise
                # The proxy keys conversations its own way: fall back to its latest one.
                answer = client.compact(None, compact.keep_turns, user=self.control.user(), focus=focus)
        except ControlError as exc:
            self.screen.post_message(am.ActionResult("compact", str(exc), "error"))
            return
        from tui.core.actions.compaction import SUMMARY_CUT_NOTE

        saved = int(answer.get("tokens_saved") or 0)
        key = self.view.settings.keys.get("compact_undo", "u")
        self.screen.post_message(
            am.ActionResult(
                "compact",
                f"session {answer.get('session_id')}: {grouped(saved)} tokens saved per request "
                f"(press {key} to undo)" + (f"; {SUMMARY_CUT_NOTE}" if answer.get("summary_cut") else ""),
            )
        )
        self.screen.post_message(am.ControlChanged(self.control.read()))

    def pick_pane(self, message: am.PaneChoiceNeeded) -> None:
        """Let the user pick the agent's pane."""
        choices = [(p.pane_id, p.describe()) for p in message.candidates]
        self.screen.app.push_screen(
            PickDialog("which pane runs the agent?", message.problem, choices),
            lambda pane: self.then(bool(pane), self._start, "pane", pane, message.focus),
        )

    def confirm_undo(self) -> None:
        """Ask, then drop the proxy compaction of the selected session (or the newest)."""
        snapshot = self.view.control
        active = snapshot.compactions if snapshot is not None else ()
        selected = self.view.selected.session_id if self.view.selected is not None else ""
        row = next((c for c in active if c.session_id == selected), active[0] if active else None)
        which = f"session {row.session_id}" if row is not None else "the newest session"
        saved = f" (it saves {grouped(row.tokens_saved)} tokens per request)" if row is not None else ""
        count = row.folded_messages if row is not None else 0
        folded = f" (the {count} folded messages, as sent)" if count else ""
        body = (
            f"Drop the proxy compaction of {which}{saved}? Its next request goes out with the full "
            f"history again{folded}, and the server re-processes it from the summary on."
        )
        session = selected if any(c.session_id == selected for c in active) else None
        self.screen.app.push_screen(
            ConfirmDialog("undo compaction", body, "Undo"),
            lambda ok: self.then(bool(ok), self._start_undo, session),
        )

    def _start_undo(self, session: str | None) -> None:
        self.in_thread(self._undo, session, group="act", description="undo compaction")

    def _undo(self, session: str | None) -> None:
        try:
            answer = self._client().undo_compaction(session, self.control.user())
        except ControlError as exc:
            self.screen.post_message(am.ActionResult("undo compaction", str(exc), "error"))
            return
        self.screen.post_message(
            am.ActionResult("undo compaction", f"session {answer.get('session_id')}: full history sent again")
        )
        self.screen.post_message(am.ControlChanged(self.control.read()))
