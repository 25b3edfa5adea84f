"""The findings pane: what to change in the session, what it saves, and the key that applies it."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.core.config import Settings
from tui.core.terminal_text import printable_lines


class FindingsScreen(ModalScreen[None]):
    """Modal list of the session's ranked findings (`ctxbudget findings` prints the same)."""

    BINDINGS = [Binding("escape,i", "dismiss", "Close", id="findings_close")]

    class Ready(Message):
        """The findings text, built off the UI thread."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(self, journal: str | Path | None, session: str | None, settings: Settings) -> None:
        super().__init__()
        self.journal = Path(journal) if journal else None
        self.session = session
        self.settings = settings

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="findings-scroll"):
            yield Static("looking for findings…", id="findings-body", markup=False)

    def on_mount(self) -> None:
        self.build()

    @work(thread=True, exclusive=True, exit_on_error=False, group="findings", description="build findings")
    def build(self) -> None:
        """Read the session from the journal and ask the server, in a thread."""
        from tui.core.insight.gather import SessionNotFound, build_findings
        from tui.core.insight.model import render_text

        if self.journal is None or not self.journal.exists():
            self.post_message(self.Ready("Findings need the journal: run the proxy (`ctxbudget proxy`)."))
            return
        try:
            report = build_findings(self.journal, self.settings, self.session)
        except SessionNotFound as exc:
            self.post_message(self.Ready(str(exc)))
            return
        self.post_message(self.Ready(render_text(report)))

    def on_findings_screen_ready(self, message: FindingsScreen.Ready) -> None:
        self.query_one("#findings-body", Static).update(printable_lines(message.text))
