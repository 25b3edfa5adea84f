"""In-flight rows: one journal row from forwarding to the end (real SQLite), the flight join to slots,
the give-up texts, the budget's choice while following, and how reports count each kind of end."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

from support.eventually import eventually_sync
from test_journal import make_exchange, make_result

from tui.core.anatomy.analyze import AnalysisResult
from tui.core.feed.flights import FlightTracker
from tui.core.feed.follow import budget_record, mcp_record
from tui.core.journal.outcome import gave_up_error, outcome_error, upstream_message
from tui.core.journal.reader import JournalReader
from tui.core.journal.record_build import build_record
from tui.core.journal.writer import Journal
from tui.core.logs.state import SlotState
from tui.core.records import RequestRecord, Usage
from tui.core.report.summary import summarize


def provisional(i: int = 0) -> RequestRecord:
    exchange = dataclasses.replace(make_exchange(i), status=0, response_body=b"", ttfb_ms=None, total_ms=None)
    return build_record(
        exchange,
        AnalysisResult(kind="main", dialect="anthropic"),
        request_bytes=10,
        response_bytes=0,
        has_body=False,
        state="in_flight",
    )


def final(i: int = 0) -> RequestRecord:
    exchange = make_exchange(i)
    return build_record(exchange, make_result(i), request_bytes=10, response_bytes=30, has_body=False)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_final_row_replaces_the_provisional_one_in_place(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    flight = f"{os.getpid()}-1-0"
    row_id = journal.append_record(provisional(), flight=flight, delivery_key="k1")
    reader = JournalReader(tmp_path / "j.sqlite3")
    assert [r.state for r in reader.latest(5)] == ["in_flight"]
    assert reader.count(finished=True) == 0 and reader.count() == 1
    # A replayed announcement changes nothing; the final row takes the same id.
    assert journal.append_record(provisional(), flight=flight, delivery_key="k1") == row_id
    assert journal.append_record(final(), flight=flight, delivery_key="k2") == row_id
    rows = reader.rows([row_id])
    assert [(r.id, r.state, r.status) for r in rows] == [(row_id, "done", 200)]
    full = reader.get(row_id)
    assert full is not None and full.anatomy is not None and full.anatomy.parts
    # The final capture resent after a worker crash is journaled once.
    assert journal.append_record(final(), flight=flight, delivery_key="k2") == row_id
    assert reader.count() == 1
    journal.close()


def test_rows_of_a_proxy_that_is_gone_are_marked_interrupted(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite3")
    gone = dead_pid()
    mine = journal.append_record(provisional(0), flight=f"{os.getpid()}-1-0")
    theirs = journal.append_record(provisional(1), flight=f"{gone}-1-0")
    assert journal.sweep_flights() == 1
    reader = JournalReader(tmp_path / "j.sqlite3")
    by_id = {r.id: r for r in reader.rows([mine, theirs])}
    assert by_id[mine].state == "in_flight"  # this process is alive: its request may still end
    assert by_id[theirs].state == "interrupted"
    assert by_id[theirs].error == (
        f"the proxy (pid {gone}) stopped before the response ended; the client's request was cut off"
    )
    assert journal.sweep_flights() == 0
    journal.close()


def test_give_up_and_upstream_error_texts() -> None:
    cut = gave_up_error(612_400.0, None, 0)
    assert cut.startswith("client closed the connection after 612 s before the first response byte")
    assert "raise the agent's timeout" in cut
    assert "while the response streamed (1,234 bytes sent)" in gave_up_error(2_500.0, 90.0, 1234)
    body = (
        b'{"error":{"code":400,"message":"request (27699 tokens) exceeds the available context size '
        b'(8192 tokens), try increasing it","type":"exceed_context_size_error","n_prompt_tokens":27699}}'
    )
    assert upstream_message(body) == (
        "request (27699 tokens) exceeds the available context size (8192 tokens), try increasing it"
    )
    assert upstream_message(b'{"error": "model not found"}') == "model not found"
    assert upstream_message(b"Bad Gateway\nmore") == "Bad Gateway"
    assert upstream_message(b"") is None
    rejected = dataclasses.replace(make_exchange(), status=400, response_body=body)
    assert outcome_error(rejected) == (
        "upstream 400: request (27699 tokens) exceeds the available context size (8192 tokens), "
        "try increasing it"
    )
    assert outcome_error(make_exchange()) is None
    assert outcome_error(make_exchange(), "in_flight") is None


def slot(task: int | None, phase: str, progress: float | None = None, prompt: int | None = None) -> SlotState:
    return SlotState(0, 4096, task, None, phase, progress, prompt, 46, None, None, None, (), None)


def test_a_flight_joins_its_slot_task_and_measures_rate_and_eta() -> None:
    tracker = FlightTracker()
    row = dataclasses.replace(provisional(), id=7, dialect="anthropic", ts=time.time() - 200)
    tracker.add([row])
    (waiting,) = tracker.observe([slot(None, "idle")], now=0.0)
    assert waiting.phase == "waiting" and waiting.short == "…"
    (first,) = tracker.observe([slot(12, "prompt", 0.1, 27_699)], now=10.0)
    assert first.rate is None and first.eta_s is None  # one sample: no rate yet
    (later,) = tracker.observe([slot(12, "prompt", 0.2, 27_699)], now=110.0)
    assert later.rate is not None and round(later.rate, 1) == 27.7
    assert later.eta_s is not None and round(later.eta_s) == 800
    assert later.short == "20%"
    text = later.text(now=row.ts + 200)
    assert text.startswith("processing 20% of 27,699 at 28 t/s, ETA 13 min")
    assert "the agent gives up after ~300 s of silence" in text  # 200 s in, ~800 s to go
    # The client gives up: the final row keeps the progress and gets the server's count.
    tracker.observe([slot(None, "idle")], now=120.0)
    gone = dataclasses.replace(row, state="done", error=gave_up_error(300_000.0, None, 0), usage=Usage())
    done = tracker.finish(gone)
    assert done.usage.prompt_tokens == 27_699 and done.usage.cached_tokens == 46
    assert done.error is not None and done.error.endswith(
        "[at 20% of the prompt (27,699 tokens), processing 28 t/s]"
    )
    assert not tracker and tracker.finish(gone) is gone


def test_two_flights_take_slot_tasks_in_forwarding_order() -> None:
    tracker = FlightTracker()
    a = dataclasses.replace(provisional(0), id=1, ts=100.0)
    b = dataclasses.replace(provisional(1), id=2, ts=101.0)
    tracker.add([b, a])
    both = tracker.observe(
        [
            dataclasses.replace(slot(5, "prompt", 0.5, 100), slot=0),
            dataclasses.replace(slot(6, "prompt", 0.1, 900), slot=1),
        ],
        now=1.0,
    )
    assert [(f.record_id, f.slot, f.prompt_tokens) for f in both] == [(1, 0, 100), (2, 1, 900)]


def test_following_shows_the_newest_main_request_of_the_active_session() -> None:
    main = dataclasses.replace(final(0), id=1, kind="main", session_id="s")
    other_session = dataclasses.replace(final(1), id=2, kind="main", session_id="t")
    title = dataclasses.replace(final(2), id=3, kind="title", session_id="s")
    rows = [main, other_session, title]
    assert budget_record(rows, title) == main
    assert budget_record(rows, other_session) == other_session
    lone = dataclasses.replace(title, session_id="u")
    assert budget_record(rows, lone) == lone


def test_the_mcp_pane_follows_the_newest_analysed_main_request() -> None:
    """A side request or a main one still in flight names no MCP servers: the pane keeps the last that did."""
    main = dataclasses.replace(final(0), id=1, kind="main", session_id="s")
    assert main.anatomy is not None
    title = dataclasses.replace(final(1), id=2, kind="title", session_id="s", anatomy=None)
    flying = dataclasses.replace(provisional(2), id=3, kind="main", session_id="s")
    rows = [main, title, flying]
    assert mcp_record(rows, title) == main
    assert mcp_record(rows, flying) == main
    assert budget_record(rows, flying) == flying  # the budget shows the request in flight itself
    alone = dataclasses.replace(flying, session_id="new")
    assert mcp_record(rows, alone) == alone  # nothing analysed in its session yet


def test_reports_count_rejected_cut_off_and_in_flight_work_apart() -> None:
    ok = dataclasses.replace(final(0), id=1, usage=Usage(1000, 400, 10))
    rejected = dataclasses.replace(
        final(1), id=2, status=400, error="upstream 400: request exceeds", usage=Usage(27_699)
    )
    gave_up = dataclasses.replace(
        final(2), id=3, error=gave_up_error(301_000.0, None, 0), usage=Usage(5000, 46)
    )
    interrupted = dataclasses.replace(
        final(3), id=4, state="interrupted", error="the proxy stopped", usage=Usage()
    )
    flying = dataclasses.replace(provisional(4), id=5, dialect="anthropic")
    s = summarize([ok, rejected, gave_up, interrupted, flying])
    assert (s.requests, s.errors, s.rejected, s.cancelled, s.in_flight) == (4, 3, 1, 2, 1)
    assert (s.prompt_tokens, s.cached_tokens) == (1000, 400)  # completed work only


def test_requests_answered_without_a_slot_are_not_joined_to_one() -> None:
    tracker = FlightTracker()
    counting = dataclasses.replace(provisional(0), id=1, kind="count_tokens", ts=100.0)
    other_path = dataclasses.replace(provisional(1), id=2, dialect="", ts=100.5)
    model_call = dataclasses.replace(provisional(2), id=3, ts=101.0)
    tracker.add([counting, other_path, model_call])
    (flight,) = tracker.observe([slot(9, "prompt", 0.3, 500)], now=1.0)
    assert flight.record_id == 3 and flight.slot == 0


def test_requests_lists_an_in_flight_row_with_dots_for_its_status() -> None:
    from tui.commands.requests_cmd import table_line

    flying = dataclasses.replace(provisional(0), id=12)
    assert "  ...  " in table_line(flying)
    assert " 200 " in table_line(dataclasses.replace(final(0), id=13))
    assert flying.to_json()["state"] == "in_flight"


def test_a_backlogged_pipeline_skips_in_flight_rows_whose_final_row_is_queued(tmp_path: Path) -> None:
    """The worker (a real process) is stopped while requests end: their final rows alone are journaled."""
    import signal

    from test_proxy_pipeline import capture

    from tui.core.analysis.sinks import NullAnalyzer
    from tui.core.analysis.worker import ProcessPipeline
    from tui.core.config import JournalSettings, Settings

    journal = tmp_path / "j.sqlite3"
    settings = Settings(journal=JournalSettings(path=str(journal)))
    pipeline = ProcessPipeline(settings, journal, None, NullAnalyzer)
    pipeline.start()
    try:
        assert pipeline.worker_pid is not None
        os.kill(pipeline.worker_pid, signal.SIGSTOP)
        pid = pipeline.worker_pid
        eventually_sync(lambda: Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T",
                        what="the worker stopped")
        # A capture larger than the pipe's buffer holds the feeder in its send until the worker resumes,
        # so every announcement below is still queued when its final capture arrives (the backlog).
        pipeline.submit(capture(99, body=b'{"pad": "' + b"x" * (4 << 20) + b'"}'))
        finals = [capture(i) for i in range(5)]
        for i, done in enumerate(finals):
            pipeline.submit(done.announcement(f"{os.getpid()}-7-{i}"))
            pipeline.submit(done)
        while pipeline.spooled < 6:
            time.sleep(0.01)
        os.kill(pipeline.worker_pid, signal.SIGCONT)
        assert pipeline.flush(60)
    finally:
        pipeline.stop()
    rows = JournalReader(journal).latest(20)
    assert [r.state for r in rows] == ["done"] * 6 and pipeline.journaled == 6
    import sqlite3

    with sqlite3.connect(journal) as conn:  # only the final captures reached the worker
        sent = conn.execute("SELECT COUNT(*) FROM deliveries WHERE key NOT LIKE 'flight:%'").fetchone()[0]
    assert sent == 6
