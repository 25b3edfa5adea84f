"""The report view (g): this session's and today's numbers, checked against the rows it was given."""

from __future__ import annotations

import datetime as dt
import time

from textual.widgets import Static

from tui.core.config import Settings
from tui.core.feed.demo import DemoDriver
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.recording import DEMO_RECORDING, load_recording
from tui.core.report.prices import ReportSettings
from tui.core.report.summary import is_model_request
from tui.ui.app import make_app
from tui.ui.screens.report import ReportScreen, report_text
from tui.ui.widgets.requests_table import RequestsTable


async def test_g_opens_the_report_for_the_selected_session_and_today() -> None:
    recording = load_recording(DEMO_RECORDING)
    # The replay clock starts now, so every recorded row falls on today.
    driver = DemoDriver(recording, speed=0, clock_base=time.time() - 60)
    app = make_app(DashboardFeed(driver), Settings(), tz=dt.UTC)
    async with app.run_test(size=(100, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        rows = list(app.screen.query_one(RequestsTable).by_id.values())
        session = rows[-1].session_id
        await pilot.press("g")
        await app.workers.wait_for_complete()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ReportScreen)
        text = str(screen.query_one("#report-body", Static).render())
        model_rows = [r for r in rows if is_model_request(r)]
        prompt = sum(r.usage.prompt_tokens or 0 for r in model_rows if r.session_id == session)
        assert f"This session ({session})" in text and "Today (" in text
        assert f"Requests: {len([r for r in model_rows if r.session_id == session]):,}" in text
        assert f"Prompt tokens: {prompt:,}" in text
        assert "Same traffic on a cloud API (2026-11" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, ReportScreen)


def test_report_text_without_rows_says_what_to_do() -> None:
    assert "ctxbudget env" in report_text([], None, ReportSettings())
