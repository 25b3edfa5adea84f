"""A bad file at the journal path: the proxy starts anyway (file moved aside, said on stdout);
`report` and `requests` refuse it in one line with exit 1."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from support.proxy_process import start_proxy
from test_journal_faults import rows, send
from test_proxy_fakes import FakeUpstream, fake_upstream

__all__ = ["fake_upstream"]

pytestmark = pytest.mark.timeout(120)

GARBAGE = b"not a database\n" * 64


async def test_proxy_starts_on_a_corrupt_journal_and_says_where_it_went(
    fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    (tmp_path / "journal.sqlite3").write_bytes(GARBAGE)
    proxy = start_proxy(fake_upstream.url, tmp_path)
    try:
        assert await send(proxy.url, 3) == 3
    finally:
        assert await asyncio.to_thread(proxy.stop) == 0
    aside = list(tmp_path.glob("journal.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == GARBAGE
    assert f"moved to {aside[0]}" in proxy.output()
    assert rows(proxy.journal_path) == 3


@pytest.mark.parametrize("command", ["report", "requests"])
@pytest.mark.parametrize("content", [GARBAGE, b""], ids=["garbage", "empty"])
def test_report_and_requests_refuse_a_file_that_is_not_a_journal(
    tmp_path: Path, command: str, content: bytes
) -> None:
    bad = tmp_path / "journal.sqlite3"
    bad.write_bytes(content)
    config = tmp_path / "config.toml"
    config.write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "tui", command, "--journal", str(bad)],
        capture_output=True, text=True, timeout=60,
        env={"CTXBUDGET_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and lines[0].startswith(f"ctxbudget {command}: ")
    assert bad.read_bytes() == content  # reading never moves or changes the file
