"""The capture → analysis → journal pipeline: failures stay off the client path, worker restarts, backlog."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from test_proxy_fakes import JSON_BODY, FakeUpstream, ProxyFactory, client_session, fake_upstream, start_proxy

from tui.core.analysis.capture import Capture
from tui.core.analysis.sinks import NullAnalyzer, Pipeline
from tui.core.analysis.worker import ProcessPipeline
from tui.core.anatomy.analyze import AnalysisResult
from tui.core.anatomy.exchange import Exchange
from tui.core.config import JournalSettings, Settings
from tui.core.journal.writer import Journal, JournalReader
from tui.core.records import RequestRecord

__all__ = ["fake_upstream", "start_proxy"]

pytestmark = pytest.mark.timeout(120)


class ExplodingAnalyzer:
    """Raises on every exchange."""

    def analyze(self, exchange: Exchange) -> AnalysisResult:
        """Always fails."""
        raise RuntimeError("boom")


class SlowAnalyzer:
    """Blocks until released, so captures pile up."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def analyze(self, exchange: Exchange) -> AnalysisResult:
        """Wait, then report the body size."""
        self.release.wait(30)
        return AnalysisResult(model=str(len(exchange.request_body)))


def capture(i: int, body: bytes = b"{}") -> Capture:
    """A finished capture of a small exchange."""
    c = Capture("POST", f"/v1/chat/completions?i={i}", [("x-api-key", "secret")], body, time.time())
    c.status = 200
    c.add_chunk(JSON_BODY)
    return c


async def test_analyzer_failure_never_reaches_the_client(
    fake_upstream: FakeUpstream, start_proxy: ProxyFactory
) -> None:
    proxy = await start_proxy(fake_upstream.url, analyzer=ExplodingAnalyzer())
    async with client_session() as session:
        for _ in range(3):
            async with session.post(proxy.url + "/v1/messages", data=b"{}") as r:
                assert r.status == 200 and await r.read() == JSON_BODY
    records = await proxy.flushed()
    assert [r.unparsed_reason for r in records] == ["analysis failed: RuntimeError: boom"] * 3
    assert proxy.service.status()["pipeline_failures"] == 3
    assert JournalReader(proxy.service.journal_path).count() == 3


def test_backlog_over_the_limit_drops_bodies_but_keeps_rows(tmp_path: Path) -> None:
    analyzer = SlowAnalyzer()
    records: list[RequestRecord] = []
    journal = Journal(tmp_path / "j.sqlite3")
    pipeline = Pipeline(journal, lambda: analyzer, records.append, max_backlog_bytes=50_000)
    pipeline.start()
    for i in range(5):
        pipeline.submit(capture(i, b"x" * 20_000))
    analyzer.release.set()
    assert pipeline.flush(30)
    pipeline.stop()
    assert len(records) == 5
    dropped = [r for r in records if r.unparsed_reason == "analysis backlog full: bodies dropped"]
    kept = [r for r in records if r.model == "20000"]
    assert len(kept) == 2 and len(dropped) == 3


def test_worker_process_journals_and_restarts_after_a_crash(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    Journal(journal).close()
    records: list[RequestRecord] = []
    pipeline = ProcessPipeline(
        Settings(journal=JournalSettings(path=str(journal))), journal, records.append, NullAnalyzer
    )
    pipeline.start()
    try:
        pipeline.submit(capture(0))
        assert pipeline.flush(60)
        worker = pipeline._worker
        assert worker is not None
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait(10)
        deadline = time.monotonic() + 10
        while worker.receiver.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        pipeline.submit(capture(1))
        assert pipeline.flush(60)
    finally:
        pipeline.stop()
    assert [r.path for r in records] == ["/v1/chat/completions?i=0", "/v1/chat/completions?i=1"]
    assert all(r.unparsed_reason == "analysis disabled" and r.id > 0 for r in records)
    rows = JournalReader(journal).since(0)
    assert [r.id for r in rows] == [r.id for r in records]
    assert (tmp_path / "analysis-worker.log").exists()
