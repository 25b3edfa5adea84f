"""The pipeline in a worker process, so analysis never competes with the proxy's event loop for the GIL."""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, TYPE_CHECKING

from tui.core.analysis.sinks import (
    DEFAULT_BACKLOG_BYTES,
    AnalyzerFactory,
    BacklogGate,
    CaptureProcessor,
    RecordCallback,
    SettingsAnalyzer,
)
from tui.core.config import Settings
from tui.core.journal.writer import Journal
from tui.core.records import RequestRecord

if TYPE_CHECKING:  # the proxy package imports this module; avoid the cycle at runtime
    from tui.core.analysis.capture import Capture

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
WORKER_LOG_NAME = "analysis-worker.log"
PIPE_BUFFER_BYTES = 1024 * 1024
WORKER_ENTRY = (
    "import sys; from tui.core.analysis.worker import _main; raise SystemExit(_main(sys.argv[1:]))"
)
# The directory holding the `tui` package, so the worker imports the same code as the proxy.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
WORKER_NICE = 10


@dataclass(frozen=True)
class WorkerConfig:
    """Everything the worker needs (picklable: sent to a spawned process)."""

    settings: Settings
    journal_path: str | None
    analyzer_factory: AnalyzerFactory | None = None


def worker_main(inbox: Connection, outbox: Connection) -> None:
    """Worker loop: config first, then captures; analyze, journal, reply (size, record, failures)."""
    config: WorkerConfig = inbox.recv()
    _lower_priority()
    journal = None
    if config.journal_path is not None:
        js = config.settings.journal
        journal = Journal(
            config.journal_path,
            store_bodies=js.store_bodies,
            retention_days=js.retention_days,
            max_rows=js.max_rows,
        )
    processor = CaptureProcessor(journal, config.analyzer_factory or SettingsAnalyzer(config.settings))
    try:
        while True:
            try:
                capture = inbox.recv()
            except EOFError:
                break
            if capture is None:
                break
            record: RequestRecord | None = None
            try:
                record = processor.process(capture)
            except Exception:
                processor.failures += 1
                log.exception("analysis worker failed on one exchange")
            outbox.send((capture.approx_size, record, processor.failures))
    finally:
        if journal is not None:
            journal.close()


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    to_worker: Connection
    receiver: threading.Thread

    def alive(self) -> bool:
        return self.process.poll() is None


class ProcessPipeline:
    """Hands captures to a worker process (restarted if it dies); records come back to on_record.

    The worker is a plain `python -c` child (not multiprocessing, which would re-run the caller's
    unguarded __main__); its stderr goes to `worker_log` (default: next to the journal).
    """

    def __init__(
        self,
        settings: Settings,
        journal_path: Path | None,
        on_record: RecordCallback | None = None,
        analyzer_factory: AnalyzerFactory | None = None,
        max_backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
        worker_log: Path | None = None,
    ) -> None:
        self.config = WorkerConfig(settings, str(journal_path) if journal_path else None, analyzer_factory)
        self.on_record = on_record
        self.worker_log = worker_log or (journal_path.parent / WORKER_LOG_NAME if journal_path else None)
        self.processed = 0
        self.failures = 0
        self._worker_failures = 0
        self._gate = BacklogGate(max_backlog_bytes)
        self._queue: queue.SimpleQueue[Capture | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._worker: _Worker | None = None
        self._stopping = False

    def start(self) -> None:
        """Start the worker process and the sender thread (idempotent)."""
        if self._sender is None:
            self._worker = self._spawn()
            self._sender = threading.Thread(
                target=self._send_loop, name="ctxbudget-pipeline-send", daemon=True
            )
            self._sender.start()

    def submit(self, capture: Capture) -> None:
        """Queue a finished capture; never blocks."""
        self._gate.admit(capture)
        self._queue.put(capture)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is journaled; False on timeout."""
        return self._gate.wait_idle(timeout)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Let the worker finish what it has, then stop it."""
        if self._sender is None:
            return
        self._queue.put(None)
        self._sender.join(timeout)
        worker = self._worker
        if worker is not None:
            try:
                worker.process.wait(timeout)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait(timeout)
            worker.receiver.join(timeout)
            worker.to_worker.close()
        self._sender = None
        self._worker = None

    def _spawn(self) -> _Worker:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        _grow_pipe(to_child_w)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        stderr: int | IO[bytes] = subprocess.DEVNULL
        log_file: IO[bytes] | None = None
        if self.worker_log is not None:
            try:
                self.worker_log.parent.mkdir(parents=True, exist_ok=True)
                log_file = stderr = open(self.worker_log, "ab")  # noqa: SIM115  (handed to the child)
            except OSError:
                stderr = subprocess.DEVNULL
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", WORKER_ENTRY, str(to_child_r), str(from_child_w)],
                pass_fds=(to_child_r, from_child_w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                close_fds=True,
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
            if log_file is not None:
                log_file.close()
        to_worker = Connection(to_child_w, readable=False)
        to_worker.send(self.config)
        receiver = threading.Thread(
            target=self._receive_loop,
            args=(Connection(from_child_r, writable=False),),
            name="ctxbudget-pipeline-receive",
            daemon=True,
        )
        receiver.start()
        return _Worker(process, to_worker, receiver)

    def _send_loop(self) -> None:
        while True:
            capture = self._queue.get()
            worker = self._worker
            if capture is None:
                self._stopping = True
                if worker is not None:
                    try:
                        worker.to_worker.send(None)
                    except OSError:
                        pass
                return
            for _attempt in range(2):
                if worker is None or not worker.alive():
                    worker = self._worker = self._spawn()
                try:
                    worker.to_worker.send(capture)
                    break
                except OSError:
                    log.warning("analysis worker gone; restarting it")
                    worker = None
            else:
                self.failures += 1
                self._gate.done(capture.approx_size)

    def _receive_loop(self, conn: Connection) -> None:
        while True:
            try:
                size, record, worker_failures = conn.recv()
            except (EOFError, OSError):
                break
            self.processed += 1
            self.failures += max(0, worker_failures - self._worker_failures)
            self._worker_failures = worker_failures
            try:
                if record is not None and self.on_record is not None:
                    self.on_record(record)
            except Exception:
                log.exception("on_record callback failed")
            finally:
                self._gate.done(size)
        conn.close()
        if not self._stopping:
            log.error("analysis worker exited unexpectedly; captures in flight were lost")
            self._worker_failures = 0
            self._gate.clear()


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


def _grow_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe buffer so a Claude-sized capture goes in one write (best effort)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BUFFER_BYTES)
    except (ImportError, OSError):
        pass


def _main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    inbox = Connection(int(argv[0]), writable=False)
    outbox = Connection(int(argv[1]), readable=False)
    worker_main(inbox, outbox)
    return 0

