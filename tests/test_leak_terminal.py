"""Terminal escapes: model names and session ids from request bodies never reach a terminal raw.

The commands are run as real processes against a real llama-server; the dashboard's render points are
checked on a running app (Rich markup in a model name must show literally).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from rich.text import Text
from support.llama import RunningServer
from test_cli_proxy import cli_env, run_cli, start_proxy_process
from textual.app import App, ComposeResult

from tui.commands.proxy_cmd import format_record
from tui.commands.requests_cmd import table_line
from tui.core.records import RequestRecord, Usage
from tui.core.terminal_text import printable, printable_lines
from tui.ui.screens.detail import summary_text
from tui.ui.widgets.requests_table import RequestsTable

OSC52 = "\x1b]52;c;ZXZpbA==\x07"  # writes "evil" to the clipboard of a terminal that allows it
HOSTILE_MODEL = f"[bold red]{OSC52}m\x9b2J\u202egnp.exe"
HOSTILE_SESSION = "\x1b[2Jsess\x07ion"
CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


def hostile_record() -> RequestRecord:
    return RequestRecord(
        id=7, ts=1.0, method="POST", path="/v1/messages?\x1b[31m=1", status=200, kind="main",
        dialect="anthropic", model=HOSTILE_MODEL, session_id=HOSTILE_SESSION, error="boom \x1b]0;title\x07",
    )


def assert_no_controls(text: str) -> None:
    for char in CONTROLS:
        assert char not in text, f"{char!r} printed raw in {text!r}"


def test_printable_escapes_controls_visibly() -> None:
    assert printable("a\x1b[31mb\x07c\td\u202ee\x9bf") == "a\\x1b[31mb\\x07c\\x09d\\u202ee\\x9bf"
    assert printable("héllo wörld ✓ 日本") == "héllo wörld ✓ 日本"
    assert printable_lines("one\x1b\ntwo") == "one\\x1b\ntwo"


def test_command_lines_escape_request_text() -> None:
    for line in (format_record(hostile_record()), table_line(hostile_record())):
        assert_no_controls(line)
        assert "\\x1b]52;c;ZXZpbA=" in line


def test_detail_summary_escapes_and_shows_markup_literally() -> None:
    text = summary_text(hostile_record(), 8192, None)
    assert_no_controls(text.plain)
    assert "model [bold red]\\x1b]52" in text.plain
    # The model the server's reply names is the upstream's text: escaped too.
    answered = dataclasses.replace(hostile_record(), usage=Usage(response_model="[b]srv\x1b[2J"))
    text = summary_text(answered, 8192, None)
    assert_no_controls(text.plain)
    assert "(answered by [b]srv\\x1b[2J)" in text.plain


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield RequestsTable()


async def test_dashboard_table_shows_markup_literally_without_controls() -> None:
    app = TableApp()
    async with app.run_test(size=(120, 10)) as pilot:
        table = app.query_one(RequestsTable)
        table.add_records([hostile_record()])
        await pilot.pause()
        cells = table.get_row("7")
        shown = [cell.plain if isinstance(cell, Text) else str(cell) for cell in cells]
        joined = " ".join(shown)
        assert_no_controls(joined)
        assert "\\x1b]52" in joined
        assert any("[bold" in cell for cell in shown)  # markup shown as text, not applied
        screen = "\n".join(
            "".join(segment.text for segment in strip) for strip in (table.render_line(y) for y in range(3))
        )
        assert_no_controls(screen)
        assert "[bold red]\\x1b]52" in screen  # markup shown as text, the escape visible


@pytest.mark.llama
@pytest.mark.timeout(180)
def test_proxy_requests_and_report_print_no_escapes(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite3"
    proc, url = start_proxy_process(tmp_path, shared_llama_server.url, journal)
    try:
        user_id = json.dumps({"session_id": HOSTILE_SESSION})
        body = {
            "model": HOSTILE_MODEL, "max_tokens": 4, "temperature": 0, "metadata": {"user_id": user_id},
            "messages": [{"role": "user", "content": "hi"}],
        }
        response = httpx.post(url + "/v1/messages", json=body, timeout=60)
        assert response.status_code == 200
        assert proc.stdout is not None
        line = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "/v1/messages" in line
    assert_no_controls(line)
    assert "\\x1b]52;c;ZXZpbA==\\x07" in line  # the model, escaped, not dropped
    requests = run_cli(tmp_path, "requests", "--journal", str(journal))
    assert requests.returncode == 0, requests.stderr
    assert_no_controls(requests.stdout)
    assert "\\x1b[2Jsess" in requests.stdout
    for fmt in ("table", "md", "csv"):
        report = subprocess.run(
            [sys.executable, "-m", "tui", "report", "--journal", str(journal), "--format", fmt],
            capture_output=True, text=True, timeout=60, cwd=tmp_path, env=cli_env(tmp_path),
        )
        assert report.returncode == 0, report.stderr
        assert_no_controls(report.stdout)
        assert "sess" in report.stdout
