"""The analysis worker process itself: read captures, analyze and journal them, acknowledge each."""

from __future__ import annotations

import logging
import os
import pickle
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from tui.core.analysis.sinks import AnalyzerFactory, CaptureProcessor, SettingsAnalyzer
from tui.core.config import Settings
from tui.core.journal.writer import Journal
from tui.core.records import RequestRecord

if TYPE_CHECKING:
    from tui.core.otel.exporter import SpanExport

log = logging.getLogger(__name__)

WORKER_NICE = 10
# A capture is two messages, its key and then the pickled capture (as spooled), so the payload is never
# copied into one message; an empty key says stop.
STOP_MESSAGE = b""


def send_capture(conn: Connection, key: str, payload: bytes) -> None:
    """Send one capture to the worker (the key readable even if the payload is not)."""
    conn.send_bytes(key.encode())
    conn.send_bytes(payload)


@dataclass(frozen=True)
class WorkerConfig:
    """Everything the worker needs (picklable: sent to a spawned process)."""

    settings: Settings
    journal_path: str | None
    analyzer_factory: AnalyzerFactory | None = None


def worker_main(inbox: Connection, outbox: Connection) -> None:
    """Worker loop: config first, then captures (key, payload); analyze, journal, then acknowledge each.

    Replies are ("begin", key) before each capture, ("ack", key, record or None, committed, error,
    failures) once its row is committed (or has failed for good), ("problem", text or None) while
    the journal is locked, replaced or bad, and ("otel", counts) after each span batch when [otel] is on.
    A proxy that died mid-way is no reason to stop: what is already in the pipe still gets journaled.
    """
    config: WorkerConfig = inbox.recv()
    os.umask(0o077)  # the journal's WAL/SHM and anything else this process creates: owner only
    _lower_priority()
    replies = _Replies(outbox)
    journal = None
    journal_error: str | None = None
    if config.journal_path is not None:
        js = config.settings.journal
        try:
            journal = Journal(
                config.journal_path,
                store_bodies=js.store_bodies,
                retention_days=js.retention_days,
                max_rows=js.max_rows,
                on_problem=lambda text: replies.send(("problem", text)),
            )
        except Exception as exc:
            journal_error = f"cannot open the journal {config.journal_path}: {type(exc).__name__}: {exc}"
            log.exception("analysis worker cannot open the journal")
            replies.send(("problem", journal_error))
    spans = _start_span_export(config.settings, replies)
    processor = CaptureProcessor(journal, config.analyzer_factory or SettingsAnalyzer(config.settings), spans)
    processor.warm_up()  # before any "begin": a kill during start-up must not blame a capture
    processor.sweep()
    try:
        while True:
            try:
                key_bytes = inbox.recv_bytes()
                if key_bytes == STOP_MESSAGE:
                    break
                payload = inbox.recv_bytes()
            except EOFError:
                break
            key = key_bytes.decode()
            try:
                capture = pickle.loads(payload)
            except Exception as exc:  # e.g. spooled by another ctxbudget version: count it, go on
                processor.failures += 1
                unreadable = f"unreadable capture ({type(exc).__name__}: {exc}); spooled by another version?"
                replies.send(("ack", key, None, False, unreadable, processor.failures))
                continue
            replies.send(("begin", key))  # if this worker dies now, this capture is the suspect
            record: RequestRecord | None = None
            try:
                record = processor.process(capture, key)
            except Exception:
                processor.failures += 1
                log.exception("analysis worker failed on one exchange")
            wanted = config.journal_path is not None
            committed = record is not None and (record.id > 0 or not wanted)
            error: str | None = None
            if not committed:
                error = journal_error or processor.journal_error or "analysis failed (see the worker log)"
            replies.send(("ack", key, record, committed, error, processor.failures))
    finally:
        if journal is not None:
            journal.close()
        if spans is not None:
            from tui.core.otel import FLUSH_AT_EXIT_S

            spans.shutdown(FLUSH_AT_EXIT_S)


def _start_span_export(settings: Settings, replies: _Replies) -> SpanExport | None:
    """The OpenTelemetry exporter when [otel] endpoint is set; a failure to start it is logged, not fatal."""
    if not settings.otel.endpoint:
        return None
    from tui.core.otel import start_span_export

    try:
        spans = start_span_export(
            settings.otel, lambda status: replies.send(("otel", status)), settings.proxy.upstream
        )
    except Exception as exc:
        log.exception("cannot start the OpenTelemetry export")
        replies.send(("otel", {"endpoint": settings.otel.endpoint, "last_error": f"not started: {exc}"}))
        return None
    if spans is not None:
        replies.send(("otel", spans.status()))
    return spans


class _Replies:
    """The worker's outbox; once the proxy is gone, replies are dropped and journaling goes on.

    Sent from the worker loop and from the OpenTelemetry SDK's export thread: one send at a time.
    """

    def __init__(self, outbox: Connection) -> None:
        self.outbox = outbox
        self.broken = False
        self._lock = threading.Lock()

    def send(self, message: tuple[object, ...]) -> None:
        with self._lock:
            if self.broken:
                return
            try:
                self.outbox.send(message)
            except OSError:
                self.broken = True


def _lower_priority() -> None:
    """Background work: the proxy, the agent and llama-server come first.

    SCHED_IDLE (Linux) lets any normal task preempt the worker at once; a nice value alone still
    lets it delay a waking proxy by a scheduler slice on a busy machine.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        return
    except (AttributeError, OSError):
        pass
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    """Entry point of the worker process: argv holds the inbox and outbox file descriptors."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    inbox = Connection(int(argv[0]), writable=False)
    outbox = Connection(int(argv[1]), readable=False)
    worker_main(inbox, outbox)
    return 0

