"""Speeds joined from the real server log: a row never takes an earlier task's speeds, and they persist."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.llama import RunningServer, StartServer
from test_journal import make_exchange, make_result

from tui.core.feed.timings import with_timings
from tui.core.journal.reader import JournalReader
from tui.core.journal.writer import Journal, store_usage
from tui.core.logs.monitor import LogMonitor
from tui.core.records import RequestRecord, Usage

pytestmark = [pytest.mark.llama]
TITLE = {
    "messages": [{"role": "user", "content": "Write a five word title for: fix the parser"}],
    "max_tokens": 6,
}


class LogFollower:
    """Feeds the server log into a monitor as a live dashboard would, lines stamped when read."""

    def __init__(self, server: RunningServer) -> None:
        self.server = server
        self.monitor = LogMonitor()
        self.offset = 0

    def read(self) -> None:
        data = self.server.log_path.read_bytes()
        end = data.rfind(b"\n") + 1
        lines = data[self.offset : end].decode(errors="replace").splitlines()
        self.offset = end
        self.monitor.feed_lines(lines, arrived=time.time())

    def read_until_done(self, tasks: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(t.done for t in self.monitor.timeline.requests()) < tasks:
            assert time.monotonic() < deadline, "task timing line never logged"
            time.sleep(0.05)
            self.read()


def title_request(server: RunningServer) -> tuple[float, Usage]:
    started = time.time()
    with server.client() as client:
        answer = client.post("/v1/chat/completions", json=TITLE)
    assert answer.status_code == 200, answer.text
    usage = answer.json()["usage"]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
    return started, Usage(usage["prompt_tokens"], cached, usage["completion_tokens"])


def test_a_title_row_waits_for_its_own_task(llama_server: StartServer, real_model: Path) -> None:
    server = llama_server(real_model, ctx_size=2048)
    follower = LogFollower(server)
    title_request(server)  # an earlier title request of the same size (before the dashboard started)
    follower.read_until_done(1)
    time.sleep(1.0)
    started, usage = title_request(server)
    row = RequestRecord(id=2, ts=started, method="POST", path="/v1/chat/completions", status=200, usage=usage)
    tasks = follower.monitor.timeline.requests()
    assert tasks[-1].prompt_tokens == usage.prompt_tokens  # same size: the old join took this one
    # The dashboard has not read the new task's timing line yet: no speeds, rather than the old task's
    # (which a join without the log's clock takes).
    assert with_timings(row, reversed(tasks), set()) is not None
    assert with_timings(row, reversed(tasks), set(), follower.monitor.wall_time) is None
    follower.read_until_done(2)
    tasks = follower.monitor.timeline.requests()
    joined = with_timings(row, reversed(tasks), set(), follower.monitor.wall_time)
    assert joined is not None
    assert joined.usage.prompt_per_second == tasks[-1].prompt_per_s
    assert joined.usage.gen_per_second == tasks[-1].eval_per_s


def test_joined_speeds_are_stored_in_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    journal = Journal(path)
    row_id = journal.append(make_exchange(0), make_result(0))
    journal.close()
    row = JournalReader(path).latest(1)[0]
    assert row.usage.prompt_per_second is None
    timed = Usage(**{**row.usage.to_json(), "prompt_per_second": 315.0, "gen_per_second": 69.2})
    assert store_usage(path, row_id, timed)
    again = JournalReader(path).latest(1)[0]  # what a dashboard started later reads
    assert (again.usage.prompt_per_second, again.usage.gen_per_second) == (315.0, 69.2)
    assert not store_usage(tmp_path / "missing.sqlite3", row_id, timed)
    assert not (tmp_path / "missing.sqlite3").exists()
