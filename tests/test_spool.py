"""The capture spool on real files: replay after a crash, torn tails, live spools left alone, cleanup."""

from __future__ import annotations

from pathlib import Path

from tui.core.analysis.spool import Spool


def test_unacknowledged_records_are_recovered_by_the_next_spool(tmp_path: Path) -> None:
    first = Spool(tmp_path / "spool")
    assert first.recover() == []
    for i in range(5):
        first.append(f"k{i}", f"payload {i}".encode())
    first.ack("k1")
    first.ack("k3")
    first.close()  # as after a stop with the worker behind: the segment stays
    second = Spool(tmp_path / "spool")
    assert second.recover() == ["k0", "k1", "k2", "k3", "k4"]  # acks lived in memory only: all come back
    assert second.read("k2") == b"payload 2"
    for key in ("k0", "k1", "k2", "k3", "k4"):
        second.ack(key)
    assert not list((tmp_path / "spool").glob("*.spool"))  # a fully acknowledged old segment is deleted


def test_a_torn_last_record_is_skipped(tmp_path: Path) -> None:
    first = Spool(tmp_path / "spool")
    first.append("a", b"x" * 100)
    first.append("b", b"y" * 100)
    first.close()
    (segment,) = (tmp_path / "spool").glob("*.spool")
    segment.write_bytes(segment.read_bytes()[:-30])  # a kill mid-write (or a power cut) tears the tail
    second = Spool(tmp_path / "spool")
    assert second.recover() == ["a"]
    assert second.read("a") == b"x" * 100


def test_a_live_spool_is_never_taken_over(tmp_path: Path) -> None:
    live = Spool(tmp_path / "spool")
    live.append("mine", b"payload")
    other = Spool(tmp_path / "spool")
    assert other.recover() == []  # the live spool holds a lock on its segment
    live.ack("mine")
    live.close()
    assert not list((tmp_path / "spool").glob("*.spool"))


def test_stopping_behind_a_stuck_worker_keeps_its_captures_for_the_next_start(tmp_path: Path) -> None:
    import os
    import signal
    import time

    from test_proxy_pipeline import capture

    from tui.core.analysis.sinks import NullAnalyzer
    from tui.core.analysis.worker import ProcessPipeline
    from tui.core.config import JournalSettings, Settings
    from tui.core.journal.reader import JournalReader

    journal = tmp_path / "j.sqlite3"
    settings = Settings(journal=JournalSettings(path=str(journal)))
    first = ProcessPipeline(settings, journal, analyzer_factory=NullAnalyzer)
    first.start()
    assert first.worker_pid is not None
    os.kill(first.worker_pid, signal.SIGSTOP)  # it never answers: stop() must give up on it
    for i in range(20):
        first.submit(capture(i))
    while first.spooled < 20:
        time.sleep(0.01)
    first.stop(timeout=1.0)
    assert first.worker_restarts == 0  # no new worker was started during the stop
    second = ProcessPipeline(settings, journal, analyzer_factory=NullAnalyzer)
    second.start()
    assert second.replayed == 20
    assert second.flush(60)
    second.stop()
    assert JournalReader(journal).count() == 20


def test_an_unreadable_spooled_capture_is_counted_and_the_rest_journaled(tmp_path: Path) -> None:
    import pickle

    from test_proxy_pipeline import capture

    from tui.core.analysis.sinks import NullAnalyzer
    from tui.core.analysis.worker import ProcessPipeline
    from tui.core.config import JournalSettings, Settings
    from tui.core.journal.reader import JournalReader

    journal = tmp_path / "j.sqlite3"
    left = Spool(tmp_path / "j.sqlite3-spool")  # as a killed proxy (maybe another version) left it
    left.append("old:1", pickle.dumps(capture(1)))
    left.append("old:2", b"\x80\x05not a pickle of a capture")
    left.append("old:3", pickle.dumps(capture(3)))
    left.close()
    settings = Settings(journal=JournalSettings(path=str(journal)))
    pipeline = ProcessPipeline(settings, journal, None, NullAnalyzer)
    pipeline.start()
    assert pipeline.flush(60)
    pipeline.stop()
    assert (pipeline.replayed, pipeline.journaled, pipeline.not_journaled) == (3, 2, 1)
    assert pipeline.worker_restarts == 0
    paths = [r.path for r in JournalReader(journal).since(0)]
    assert paths == ["/v1/chat/completions?i=1", "/v1/chat/completions?i=3"]
