"""The proxy's side of the analysis worker: spool captures, feed the worker process, restart it, count."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.core.analysis.sinks import DEFAULT_BACKLOG_BYTES, AnalyzerFactory, RecordCallback
from tui.core.analysis.spool import Spool, spool_dir
from tui.core.analysis.worker_process import STOP_MESSAGE, WorkerConfig, send_capture
from tui.core.config import Settings
from tui.core.journal.files import FILE_MODE, private_dir
from tui.core.journal.writer import ProblemCallback
from tui.core.otel import counts as otel_counts
from tui.core.records import RequestRecord
from tui.core.redact import redact, redact_query, redact_text

if TYPE_CHECKING:  # the proxy package imports this module; avoid the cycle at runtime
    from tui.core.analysis.capture import Capture

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0
WORKER_LOG_NAME = "analysis-worker.log"
PIPE_BUFFER_BYTES = 1024 * 1024
WORKER_ENTRY = (
    "import sys; from tui.core.analysis.worker_process import main; raise SystemExit(main(sys.argv[1:]))"
)
# The directory holding the `tui` package, so the worker imports the same code as the proxy.
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
# Worker deaths while working on the same capture (its "begin" sent, no ack) before it is given up.
POISON_DEATHS = 3
RESTART_MIN_INTERVAL_S = 0.5


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    to_worker: Connection
    receiver: threading.Thread
    generation: int

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class _Pending:
    """A capture not yet acknowledged; its bytes are read back from the spool when not kept here."""

    payload: bytes | None
    size: int
    deaths: int = 0


class ProcessPipeline:
    """Hands captures to a worker process (restarted if it dies); records come back to on_record.

    Two threads, so a slow worker never delays spooling: the spooler pickles each capture and
    appends it to the spool (off the event loop); the feeder sends spooled captures to the worker
    in order. Each is kept (on disk, or in memory when the spool cannot be written) until the worker
    acknowledges its committed row; a restarted worker gets every unacknowledged capture again, and
    the journal's delivery keys keep a resent capture from becoming a second row. The worker is a
    plain `python -c` child (not multiprocessing, which would re-run the caller's unguarded __main__);
    its stderr goes to `worker_log` (default: next to the journal, mode 0600).
    """

    def __init__(
        self,
        settings: Settings,
        journal_path: Path | None,
        on_record: RecordCallback | None = None,
        analyzer_factory: AnalyzerFactory | None = None,
        max_backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
        worker_log: Path | None = None,
        on_problem: ProblemCallback | None = None,
        spool: bool = True,
    ) -> None:
        self.config = WorkerConfig(settings, str(journal_path) if journal_path else None, analyzer_factory)
        self.on_record = on_record
        self.on_problem = on_problem
        self.worker_log = worker_log or (journal_path.parent / WORKER_LOG_NAME if journal_path else None)
        self.max_backlog_bytes = max_backlog_bytes
        self.spool = Spool(spool_dir(journal_path)) if spool and journal_path is not None else None
        self.processed = 0  # acknowledged captures
        self.journaled = 0  # of which rows committed
        self.failures = 0  # analysis or journal failures, and captures given up
        self.not_journaled = 0  # captures that got no row (each also reported to on_problem)
        self.worker_restarts = 0
        self.spooled = 0
        self.spool_errors = 0
        self.replayed = 0
        self.problem: str | None = None
        self._otel_now: dict[str, Any] | None = None  # the current worker's OpenTelemetry counts
        self._otel_before: dict[str, int] = {}  # summed over the workers that exited
        self._worker_failures = 0
        self._begun: str | None = None  # the capture the worker said it is working on
        self._lock = threading.Condition()
        self._unacked: dict[str, _Pending] = {}
        self._to_send: collections.deque[str] = collections.deque()
        self._announced: dict[str, str] = {}  # flight -> key of its in-flight row's capture
        self._died: int | None = None  # generation of a worker the receiver saw exit
        self._queued = 0
        self._bytes = 0
        self._seq = 0
        self._queue: queue.SimpleQueue[Capture | None] = queue.SimpleQueue()
        self._spooler: threading.Thread | None = None
        self._feeder: threading.Thread | None = None
        self._worker: _Worker | None = None
        self._generation = 0
        self._last_spawn = 0.0
        self._spooling_done = False
        self._stopping = False

    @property
    def otel(self) -> dict[str, Any] | None:
        """OpenTelemetry export counts over every worker of this run (None while export is off)."""
        return otel_counts.combined(self._otel_before, self._otel_now)

    @property
    def worker_pid(self) -> int | None:
        """The current worker process id (None before start)."""
        worker = self._worker
        return worker.process.pid if worker is not None else None

    def start(self) -> None:
        """Start the worker process and both threads (idempotent); replay an earlier spool first."""
        if self._spooler is not None:
            return
        if self.spool is not None:
            try:
                for key in self.spool.recover():
                    self._unacked[key] = _Pending(None, 0)
                    self._to_send.append(key)
                    self.replayed += 1
            except OSError as exc:
                log.error("cannot read the spool %s: %s", self.spool.directory, exc)
        self._worker = self._spawn()
        self._spooler = threading.Thread(target=self._spool_loop, name="ctxbudget-spool", daemon=True)
        self._feeder = threading.Thread(target=self._feed_loop, name="ctxbudget-feed", daemon=True)
        self._spooler.start()
        self._feeder.start()

    def submit(self, capture: Capture) -> None:
        """Queue a finished capture; never blocks (bodies are dropped past the backlog limit)."""
        with self._lock:
            if self._bytes + capture.approx_size > self.max_backlog_bytes:
                capture.drop_bodies("analysis backlog full: bodies dropped")
            self._bytes += capture.approx_size
            self._queued += 1
        self._queue.put(capture)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted (and replayed) so far is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queued or self._unacked:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
        return True

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Let the worker finish what it has, then stop it; what it did not finish stays spooled."""
        if self._spooler is None or self._feeder is None:
            return
        self._queue.put(None)
        self._spooler.join(timeout)
        self._feeder.join(timeout)
        self._stopping = True  # from here on a dead worker is not replaced: the spool keeps the rest
        worker = self._worker
        if worker is not None:
            try:
                worker.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("analysis worker did not finish in %ss; its captures stay in the spool", timeout)
                worker.process.kill()
                worker.process.wait(timeout)
            worker.receiver.join(timeout)
            worker.to_worker.close()
        if self.spool is not None:
            self.spool.close()
        self._spooler = None
        self._feeder = None
        self._worker = None

    def _spool_loop(self) -> None:
        while True:
            capture = self._queue.get()
            if capture is None:
                with self._lock:
                    self._spooling_done = True
                    self._lock.notify_all()
                return
            self._seq += 1
            key = f"{self.spool.run_id if self.spool else os.getpid()}:{self._seq}"
            _scrub(capture)
            payload = pickle.dumps(capture, pickle.HIGHEST_PROTOCOL)
            kept: bytes | None = payload
            if self.spool is not None:
                try:
                    self.spool.append(key, payload)
                    # Requests, not their in-flight rows (the flag is missing in an older version's capture).
                    self.spooled += 0 if getattr(capture, "announce", False) else 1
                    kept = None  # on disk now: read back when sent, so memory stays flat under backlog
                except OSError as exc:
                    self.spool_errors += 1
                    if self.spool_errors == 1 or self.spool_errors % 100 == 0:
                        log.error("cannot spool captures (%s); they are kept in memory only", exc)
            flight: str | None = getattr(capture, "flight", None)
            unsent: str | None = None
            with self._lock:
                self._queued -= 1
                self._unacked[key] = _Pending(kept, capture.approx_size)
                self._to_send.append(key)
                if flight is not None and getattr(capture, "announce", False):
                    self._announced[flight] = key
                elif flight is not None:
                    early = self._announced.pop(flight, None)
                    if early is not None and early in self._to_send:
                        # Its final row is queued behind it (a backlog): the in-flight row is not needed.
                        self._to_send.remove(early)
                        unsent = early
                self._lock.notify_all()
            if unsent is not None:
                self._finish(unsent, committed=True, error=None, provisional=True)

    def _feed_loop(self) -> None:
        while True:
            with self._lock:
                while not self._to_send and self._died is None and not self._spooling_done:
                    self._lock.wait()
                died, self._died = self._died, None
                if died is None and not self._to_send:
                    break  # spooling is done and everything was sent
                key = self._to_send.popleft() if died is None else None
                pending = self._unacked.get(key) if key is not None else None
            if died is not None:
                if self._stopping:
                    return
                if self._worker is not None and died == self._worker.generation:
                    self._restart()
                continue
            if key is None or pending is None:
                continue  # acknowledged meanwhile
            payload = pending.payload if pending.payload is not None else self._read_spooled(key)
            if payload is None:
                continue
            try:
                self._send(key, payload)
            except OSError:
                if self._stopping:
                    return
                self._restart()  # resends this capture with the others
        self._stopping = True
        worker = self._worker
        if worker is not None:
            with contextlib.suppress(OSError):
                worker.to_worker.send_bytes(STOP_MESSAGE)

    def _read_spooled(self, key: str) -> bytes | None:
        assert self.spool is not None
        try:
            return self.spool.read(key)
        except OSError as exc:
            self._finish(key, committed=False, error=f"cannot read it back from the spool: {exc}")
            return None

    def _send(self, key: str, payload: bytes) -> None:
        worker = self._worker
        if worker is None or not worker.alive():
            raise OSError("analysis worker is not running")
        send_capture(worker.to_worker, key, payload)

    def _restart(self) -> None:
        """Replace a dead worker and queue every unacknowledged capture again (oldest first)."""
        old = self._worker
        if old is not None:
            if old.alive():
                old.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                old.process.wait(STOP_TIMEOUT_S)
            with contextlib.suppress(OSError):
                old.to_worker.close()
        self.worker_restarts += 1
        self._otel_before = otel_counts.retire(self._otel_before, self._otel_now)
        self._otel_now = None
        self._give_up_on_poison()
        with self._lock:
            self._to_send = collections.deque(self._unacked)
            backlog = len(self._to_send)
        log.error("analysis worker exited unexpectedly; restarted it, resending %d captures", backlog)
        self._worker = self._spawn()

    def _give_up_on_poison(self) -> None:
        """A capture the worker died on (begun, not acknowledged) POISON_DEATHS times is dropped."""
        suspect, self._begun = self._begun, None
        with self._lock:
            pending = self._unacked.get(suspect) if suspect is not None else None
            if suspect is None or pending is None:
                return
            pending.deaths += 1
            if pending.deaths < POISON_DEATHS:
                return
        self._finish(suspect, committed=False, error=f"analysis worker died {POISON_DEATHS} times on it")

    def _receive_loop(self, conn: Connection, generation: int) -> None:
        self._worker_failures = 0
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            try:
                self._on_message(message)
            except Exception:  # a bad reply must not stop the acknowledgements behind it
                log.exception("unexpected reply from the analysis worker: %r", message[:2])
        conn.close()
        if not self._stopping:
            with self._lock:
                self._died = generation
                self._lock.notify_all()

    def _spawn(self) -> _Worker:
        wait = RESTART_MIN_INTERVAL_S - (time.monotonic() - self._last_spawn)
        if wait > 0:
            time.sleep(wait)  # a worker that dies at once must not turn into a busy loop
        self._last_spawn = time.monotonic()
        self._generation += 1
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        _grow_pipe(to_child_w)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        stderr: int = subprocess.DEVNULL
        if self.worker_log is not None:
            try:
                private_dir(self.worker_log.parent)
                stderr = os.open(self.worker_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
                if os.fstat(stderr).st_mode & 0o077:
                    os.fchmod(stderr, FILE_MODE)
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
            if stderr >= 0:
                os.close(stderr)
        to_worker = Connection(to_child_w, readable=False)
        to_worker.send(self.config)
        receiver = threading.Thread(
            target=self._receive_loop,
            args=(Connection(from_child_r, writable=False), self._generation),
            name="ctxbudget-pipeline-receive",
            daemon=True,
        )
        receiver.start()
        return _Worker(process, to_worker, receiver, self._generation)

    def _on_message(self, message: tuple[Any, ...]) -> None:
        if message[0] == "begin":
            self._begun = message[1]
        elif message[0] == "problem":
            self._set_problem(message[1])
        elif message[0] == "otel":
            self._otel_now = message[1]
        else:
            _, key, record, committed, error, worker_failures = message
            self.failures += max(0, worker_failures - self._worker_failures)
            self._worker_failures = worker_failures
            provisional = record is not None and record.in_flight
            finished = self._finish(key, committed=committed, error=error, provisional=provisional)
            if finished and committed and record is not None:
                self._deliver(record)

    def _finish(self, key: str, *, committed: bool, error: str | None, provisional: bool = False) -> bool:
        """Forget an acknowledged capture; False if it was already acknowledged.

        A provisional (in-flight) row is not counted: its request is counted when its final row comes.
        """
        with self._lock:
            pending = self._unacked.pop(key, None)
            if pending is None:
                return False
            self._bytes = max(0, self._bytes - pending.size)
            if provisional:
                self._lock.notify_all()
        if provisional:
            if self.spool is not None:
                self.spool.ack(key)
            if not committed:
                log.error("the in-flight row of a request was not journaled: %s", error)
            return True
        with self._lock:
            self.processed += 1
            if committed:
                self.journaled += 1
            else:
                self.not_journaled += 1
            self._lock.notify_all()
        if self.spool is not None:
            self.spool.ack(key)
        if not committed:
            if error and "died" in error:
                self.failures += 1
            self._set_problem(f"a request was not journaled: {error}", keep=True)
        elif self.problem is not None:
            self._set_problem(None)
        return True

    def _set_problem(self, text: str | None, keep: bool = False) -> None:
        if text == self.problem and not keep:
            return
        self.problem = text
        if self.on_problem is not None:
            try:
                self.on_problem(text)
            except Exception:
                log.exception("problem callback failed")

    def _deliver(self, record: RequestRecord) -> None:
        if self.on_record is None:
            return
        try:
            self.on_record(record)
        except Exception:
            log.exception("on_record callback failed")


def _scrub(capture: Capture) -> None:
    """Redact secrets before the capture reaches the spool (the worker would redact them anyway)."""
    capture.request_headers = list(redact(capture.request_headers).items())
    capture.response_headers = list(redact(capture.response_headers).items())
    capture.path = redact_query(capture.path)  # forwarded already: only the journal's copy is left
    capture.error = redact_text(capture.error) if capture.error else capture.error


def _grow_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe buffer so a Claude-sized capture goes in one write (best effort)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BUFFER_BYTES)
    except (ImportError, OSError):
        pass
