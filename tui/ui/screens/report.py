"""The report view: the `ctxbudget report` numbers for the current session and today."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.core.records import RequestRecord
from tui.core.report.prices import ReportSettings
from tui.core.report.render import summary_view
from tui.core.report.summary import day_of, summary_for
from tui.core.terminal_text import printable_lines


def start_of_today() -> float:
    """Epoch seconds of local midnight."""
    now = time.localtime()
    return time.mktime((now.tm_year, now.tm_mon, now.tm_mday, 0, 0, 0, 0, 0, -1))


def report_text(records: Sequence[RequestRecord], session: str | None, settings: ReportSettings) -> str:
    """The session and today summaries as plain text (pure, so it runs in a worker thread)."""
    label = f"{settings.prices_date} {settings.prices_note}"
    today = day_of(time.time())
    lines: list[str] = []
    if session:
        lines += summary_view(
            f"This session ({session})",
            summary_for(records, session=session, prices=settings.prices),
            settings.prices,
            label,
        )
        lines.append("")
    lines += summary_view(
        f"Today ({today})", summary_for(records, day=today, prices=settings.prices), settings.prices, label
    )
    if not records:
        lines = ["No requests yet: route your agent through the proxy (`ctxbudget env`)."]
    return printable_lines("\n".join(lines))


class ReportScreen(ModalScreen[None]):
    """Modal report over the rows the dashboard holds; `ctxbudget report` covers the whole journal."""

    BINDINGS = [Binding("escape,g", "dismiss", "Close", id="report_close")]

    class Ready(Message):
        """The report text, built off the UI thread."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    def __init__(
        self,
        records: Sequence[RequestRecord],
        session: str | None,
        settings: ReportSettings,
        journal: Path | None = None,
    ) -> None:
        super().__init__()
        self.records = tuple(records)
        self.journal = journal
        self.session = session
        self.report_settings = settings

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="report-scroll"):
            yield Static("building the report…", id="report-body", markup=False)

    def on_mount(self) -> None:
        self.build()

    @work(thread=True, exclusive=True, exit_on_error=False, group="report", description="build the report")
    def build(self) -> None:
        """Aggregate in a thread (today's rows from the journal when there is one)."""
        records: Sequence[RequestRecord] = self.records
        if self.journal is not None and self.journal.exists():
            from tui.core.report.build import load_records

            today = load_records(self.journal, since_ts=start_of_today())
            older = [r for r in self.records if r.ts < start_of_today() and r.session_id == self.session]
            records = [*older, *today]
        self.post_message(self.Ready(report_text(records, self.session, self.report_settings)))

    def on_report_screen_ready(self, message: ReportScreen.Ready) -> None:
        self.query_one("#report-body", Static).update(message.text)
