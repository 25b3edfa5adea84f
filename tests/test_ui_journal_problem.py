"""The dashboard shows journal trouble in its header (here: a corrupt journal the proxy moved aside)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.eventually import eventually

from tui.core.config import JournalSettings, ProxySettings, ServerSettings, Settings
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import LiveDriver
from tui.ui.app import make_app
from tui.ui.widgets.server_header import ServerHeader

pytestmark = pytest.mark.timeout(120)


async def test_header_says_where_a_corrupt_journal_went(tmp_path: Path, free_port: int) -> None:
    journal = tmp_path / "journal.sqlite3"
    journal.write_bytes(b"not a database\n" * 64)
    settings = Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{free_port}", upstream="http://127.0.0.1:9"),
        journal=JournalSettings(path=str(journal)),
        server=ServerSettings(url="http://127.0.0.1:9", log_file="", poll_interval=0.5),
    )
    app = make_app(DashboardFeed(LiveDriver(settings)), settings)
    async with app.run_test(size=(160, 30)):
        header = app.screen.query_one(ServerHeader)
        await eventually(lambda: header.journal, timeout=30, what="a journal problem in the header")
        aside = list(tmp_path.glob("journal.sqlite3.corrupt-*"))
        assert len(aside) == 1
        assert f"moved to {aside[0]}" in header.journal
        assert "was not a database" in str(header.render())
