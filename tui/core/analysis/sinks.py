"""Capture → analysis → journal, off the proxy's hot path (in a thread, or a worker process)."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from tui.core.analysis.savings import savings_for
from tui.core.anatomy.analyze import AnalysisResult
from tui.core.anatomy.exchange import Exchange
from tui.core.config import Settings
from tui.core.journal.record_build import build_record
from tui.core.journal.writer import Journal
from tui.core.records import RequestRecord, folded_ref

if TYPE_CHECKING:  # the proxy package imports this module; avoid the cycle at runtime
    from tui.core.analysis.capture import Capture

log = logging.getLogger(__name__)
MAX_FOLDED_ROWS = 64  # compactions remembered for the journal's dedupe (a forgotten one is stored again)

# Bodies waiting for analysis beyond this are dropped (row kept, anatomy lost): bounds the proxy's memory.
DEFAULT_BACKLOG_BYTES = 16 * 1024 * 1024


class ExchangeAnalyzer(Protocol):
    """What the pipeline needs from tui.core.anatomy.analyze.Analyzer."""

    def analyze(self, exchange: Exchange) -> AnalysisResult: ...


AnalyzerFactory = Callable[[], ExchangeAnalyzer]
RecordCallback = Callable[[RequestRecord], None]


class SettingsAnalyzer:
    """Picklable factory: the Analyzer with the counter and MCP servers from settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __call__(self) -> ExchangeAnalyzer:
        from tui.core.anatomy.analyze import Analyzer
        from tui.core.tokens import make_counter

        settings = self.settings
        from tui.core.anatomy.rendered import TemplateRenderer

        counter = make_counter(settings.anatomy.counter, settings.proxy.upstream, settings.server.api_key)
        renderer = None
        if settings.anatomy.counter != "tiktoken" and settings.proxy.upstream:
            renderer = TemplateRenderer(settings.proxy.upstream, settings.server.api_key)
        return Analyzer(counter, settings.anatomy.mcp_servers, renderer)


class NullAnalyzer:
    """Journal-only analysis (no anatomy): for measuring the proxy without tokenizing."""

    def analyze(self, exchange: Exchange) -> AnalysisResult:
        """Every row unparsed, with that reason."""
        return AnalysisResult(unparsed_reason="analysis disabled")


class CaptureSink(Protocol):
    """What the proxy hands finished captures to (thread Pipeline or ProcessPipeline)."""

    @property
    def processed(self) -> int: ...
    @property
    def journaled(self) -> int: ...
    @property
    def not_journaled(self) -> int: ...
    @property
    def failures(self) -> int: ...

    def start(self) -> None: ...
    def submit(self, capture: Capture) -> None: ...
    def flush(self, timeout: float = 10.0) -> bool: ...
    def stop(self, timeout: float = 10.0) -> None: ...


class RecordExporter(Protocol):
    """Where committed rows go besides the journal (tui.core.otel's SpanExport); must never raise."""

    def export(self, record: RequestRecord) -> None: ...


class CaptureProcessor:
    """Analyze one capture and journal it; a failure in either is logged and recorded, never raised.

    `exporter` (OpenTelemetry, when configured) gets each row once it is committed.
    """

    def __init__(
        self,
        journal: Journal | None,
        analyzer_factory: AnalyzerFactory,
        exporter: RecordExporter | None = None,
    ) -> None:
        self.journal = journal
        self.analyzer_factory = analyzer_factory
        self.exporter = exporter
        self.failures = 0
        self.journal_error: str | None = None  # why the last append failed (None once one succeeds)
        self._analyzer: ExchangeAnalyzer | None = None
        self._analyzer_error: str | None = None
        # Folded compaction turns already journaled (their hash -> the row holding them): later rows of
        # the same compaction point there instead of storing the same text again.
        self._folded_rows: dict[int, int] = {}

    def process(self, capture: Capture, key: str | None = None) -> RequestRecord:
        """The journaled record (id 0 when no journal or the append failed); `key` dedupes resends.

        An announcement gives the provisional row (state in_flight, no token counting: the server is
        busy with this very prompt); the final capture of the same flight replaces it.
        """
        exchange = capture.to_exchange()
        journal = self.journal
        flight: str | None = getattr(capture, "flight", None)  # none in a capture an older version spooled
        if getattr(capture, "announce", False):
            result = self._preview(exchange, capture.dropped)
            state = "in_flight"
            if flight and not _proxy_alive(flight):
                state = "interrupted"  # replayed from the spool of a proxy that died meanwhile
            savings = None
        else:
            result = self._analyze(exchange, capture.dropped)
            savings = savings_for(capture.rewrite, getattr(self._analyzer, "counter", None), result.body)
            state = "done"
        record = build_record(
            exchange,
            result,
            request_bytes=capture.request_bytes,
            response_bytes=capture.response_bytes,
            has_body=journal is not None and journal.store_bodies and bool(exchange.request_body),
            savings=savings,
            user=getattr(capture, "user", ""),  # a capture spooled by an older version has none
            state=state,
        )
        if journal is None:
            self._export(record)
            return record
        folded = record.compaction_folded
        held = self._folded_rows.get(hash(folded)) if folded else None
        stored = dataclasses.replace(record, compaction_folded=folded_ref(held)) if held else record
        try:
            row_id = journal.append_record(
                stored, exchange.request_body, delivery_key=key, flight=flight
            )
        except Exception as exc:
            self.failures += 1
            self.journal_error = f"{type(exc).__name__}: {exc}"
            log.exception("journal append failed")
            return dataclasses.replace(record, has_body=False)
        self.journal_error = None
        if folded and held is None:
            if len(self._folded_rows) >= MAX_FOLDED_ROWS:
                self._folded_rows.clear()
            self._folded_rows[hash(folded)] = row_id
        committed = dataclasses.replace(stored, id=row_id)
        self._export(committed)
        return committed

    def _export(self, record: RequestRecord) -> None:
        if self.exporter is None:
            return
        try:
            self.exporter.export(record)
        except Exception:  # an exporter bug must not cost the row its acknowledgement
            log.exception("exporting row %s failed", record.id)

    def _analyze(self, exchange: Exchange, dropped: str | None) -> AnalysisResult:
        if dropped:
            return AnalysisResult(unparsed_reason=dropped)
        analyzer = self._get_analyzer()
        if analyzer is None:
            return AnalysisResult(unparsed_reason=f"analyzer unavailable: {self._analyzer_error}")
        try:
            return analyzer.analyze(exchange)
        except Exception as exc:
            self.failures += 1
            log.exception("analysis failed for %s %s", exchange.method, exchange.path)
            return AnalysisResult(unparsed_reason=f"analysis failed: {type(exc).__name__}: {exc}")

    def _preview(self, exchange: Exchange, dropped: str | None) -> AnalysisResult:
        if dropped:
            return AnalysisResult(unparsed_reason=dropped)
        analyzer = self._get_analyzer()
        preview = getattr(analyzer, "preview", None)
        if preview is None:
            return AnalysisResult()
        try:
            result: AnalysisResult = preview(exchange)
        except Exception:
            log.exception("preview failed for %s %s", exchange.method, exchange.path)
            return AnalysisResult()
        return result

    def sweep(self) -> None:
        """Mark the provisional rows of proxies that are gone as interrupted (never raises)."""
        if self.journal is None:
            return
        try:
            swept = self.journal.sweep_flights()
        except Exception:
            log.exception("could not mark the in-flight rows of stopped proxies")
            return
        if swept:
            log.warning("%d requests were cut off by a proxy that stopped; their rows say so", swept)

    def warm_up(self) -> None:
        """Build the analyzer now (loading a tokenizer can take seconds) rather than on the first capture."""
        self._get_analyzer()

    def _get_analyzer(self) -> ExchangeAnalyzer | None:
        if self._analyzer is None and self._analyzer_error is None:
            try:
                self._analyzer = self.analyzer_factory()
            except Exception as exc:
                self._analyzer_error = f"{type(exc).__name__}: {exc}"
                log.exception("could not build the analyzer")
        return self._analyzer


def _proxy_alive(flight: str) -> bool:
    from tui.core.journal.outcome import flight_pid, pid_alive

    pid = flight_pid(flight)
    return pid is None or pid_alive(pid)


class BacklogGate:
    """Counts queued captures and bytes; drops bodies past the byte limit; lets callers wait for idle."""

    def __init__(self, max_bytes: int = DEFAULT_BACKLOG_BYTES) -> None:
        self.max_bytes = max_bytes
        self._bytes = 0
        self._pending = 0
        self._idle = threading.Condition()

    def admit(self, capture: Capture) -> None:
        """Account for a new capture (dropping its bodies if the backlog is full)."""
        with self._idle:
            if self._bytes + capture.approx_size > self.max_bytes:
                capture.drop_bodies("analysis backlog full: bodies dropped")
            self._bytes += capture.approx_size
            self._pending += 1

    def done(self, size: int) -> None:
        """One capture of `size` bytes finished."""
        with self._idle:
            self._bytes = max(0, self._bytes - size)
            self._pending = max(0, self._pending - 1)
            self._idle.notify_all()

    def clear(self) -> None:
        """Forget everything pending (the worker that held it is gone)."""
        with self._idle:
            self._bytes = 0
            self._pending = 0
            self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is pending; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True


class Pipeline:
    """In-process variant: one thread drains the queue (analysis shares the GIL with the proxy)."""

    def __init__(
        self,
        journal: Journal | None,
        analyzer_factory: AnalyzerFactory,
        on_record: RecordCallback | None = None,
        max_backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
        exporter: RecordExporter | None = None,
    ) -> None:
        self.processor = CaptureProcessor(journal, analyzer_factory, exporter)
        self.on_record = on_record
        self.processed = 0
        self.journaled = 0  # rows committed
        self.not_journaled = 0  # captures whose row could not be written
        self._gate = BacklogGate(max_backlog_bytes)
        self._queue: queue.SimpleQueue[Capture | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def failures(self) -> int:
        """Analysis or journal failures so far."""
        return self.processor.failures

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self._thread is None:
            self.processor.sweep()
            self._thread = threading.Thread(target=self._run, name="ctxbudget-pipeline", daemon=True)
            self._thread.start()

    def submit(self, capture: Capture) -> None:
        """Queue a finished capture; never blocks."""
        self._gate.admit(capture)
        self._queue.put(capture)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is journaled; False on timeout."""
        return self._gate.wait_idle(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Drain the queue and stop the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            capture = self._queue.get()
            if capture is None:
                return
            try:
                record = self.processor.process(capture)
                if record.in_flight:  # counted with its final row
                    if record.id > 0 and self.on_record is not None:
                        self.on_record(record)
                    continue
                self.processed += 1
                if self.processor.journal is not None:
                    if record.id > 0:
                        self.journaled += 1
                    else:
                        self.not_journaled += 1
                if self.on_record is not None:
                    self.on_record(record)
            except Exception:  # a bad exchange must never stop the pipeline
                self.processor.failures += 1
                log.exception("pipeline failed on one exchange")
            finally:
                self._gate.done(capture.approx_size)
