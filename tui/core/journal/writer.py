"""The traffic journal: one SQLite row per forwarded request, written by the analysis worker."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from tui.core.anatomy.analyze import AnalysisResult
from tui.core.anatomy.exchange import Exchange
from tui.core.journal.files import COMPANION_SUFFIXES, make_private, set_aside
from tui.core.journal.outcome import FLIGHT_KEY, flight_pid, interrupted_error, pid_alive
from tui.core.journal.reader import JournalReader
from tui.core.journal.record_build import build_record
from tui.core.journal.schema import INSERT_SQL, UPDATE_SQL, connect, pack_parts, row_values
from tui.core.records import CacheBreak, RequestRecord, RewriteSavings, Usage

__all__ = ["Journal", "JournalReader"]

log = logging.getLogger(__name__)

PRUNE_EVERY_ROWS = 500
PRUNE_EVERY_S = 600.0
# How often append() checks that the path still names the file it writes to (one stat call).
IDENTITY_CHECK_S = 1.0
# A short SQLite busy timeout: a lock held longer is reported, then retried (never dropped).
BUSY_TIMEOUT_MS = 2000
# Backoff while another process holds the write lock (each try also waits SQLite's busy timeout).
BUSY_RETRY_MAX_S = 1.0
# SQLite result codes that mean "this file is not a usable database" (not a lock, not a full disk).
CORRUPT_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)
BUSY_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
# Which capture each row came from, so a capture resent after a crash is not journaled twice.
DELIVERY_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS deliveries (key TEXT PRIMARY KEY, row_id INTEGER NOT NULL) WITHOUT ROWID"
)

ProblemCallback = Callable[[str | None], None]



def is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    """Whether SQLite says the file is not a database (or a damaged one)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF in CORRUPT_CODES) or "not a database" in str(exc)


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether another connection holds the lock (worth retrying)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return (code is not None and code & 0xFF in BUSY_CODES) or "locked" in str(exc)


def open_writable(path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """Connect to the journal (private files); a non-database file is moved aside first.

    Returns the connection and where a bad file was moved (None when the file was fine).
    """
    make_private(path)
    try:
        return connect(path), None
    except sqlite3.DatabaseError as exc:
        if not is_corrupt(exc):
            raise
        moved = set_aside(path)
        log.error("journal %s is not a database (%s); moved it to %s, starting a new one", path, exc, moved)
        make_private(path)
        return connect(path), moved


class Journal:
    """Append-only writer (one per process); commits every row so a killed proxy loses nothing.

    A locked journal is retried, never dropped; a journal file deleted or replaced under the writer is
    noticed (at most one stat per IDENTITY_CHECK_S) and reopened. `on_problem` hears a one-line
    description of each such condition, and None once a row is committed again.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        store_bodies: bool = False,
        retention_days: float = 30.0,
        max_rows: int = 200_000,
        on_problem: ProblemCallback | None = None,
        wait_for_lock: bool = True,
    ) -> None:
        self.path = Path(path)
        self.store_bodies = store_bodies
        self.retention_days = retention_days
        self.max_rows = max_rows
        self.on_problem = on_problem
        self.reopened = 0
        self.set_aside: Path | None = None
        self._problem: str | None = None
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._checked_at = 0.0
        self._since_prune = 0
        self._last_prune = 0.0
        self._wait_for_lock = wait_for_lock
        self._open()
        try:
            self._prune_now(time.time())
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise  # locked: pruning waits for the next PRUNE_EVERY_ROWS

    def _open(self) -> None:
        delay = 0.05
        moved: Path | None = None
        while True:
            try:
                conn, set_aside_now = open_writable(self.path)
                moved = moved or set_aside_now
                try:
                    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
                    conn.execute(DELIVERY_SCHEMA)
                except BaseException:
                    conn.close()
                    raise
                break
            except sqlite3.OperationalError as exc:
                if not (self._wait_for_lock and is_busy(exc)):
                    raise
                self._report(f"journal {self.path} is locked by another process ({exc}); retrying")
                time.sleep(delay)
                delay = min(delay * 2, BUSY_RETRY_MAX_S)
        self._conn = conn
        st = os.stat(self.path)
        self._identity = (st.st_dev, st.st_ino)
        self._checked_at = time.monotonic()
        if moved is not None:
            self.set_aside = moved
            self._report(f"journal {self.path} was not a database: moved to {moved}; started a new journal")

    def append(
        self,
        exchange: Exchange,
        result: AnalysisResult,
        *,
        request_bytes: int | None = None,
        response_bytes: int | None = None,
        savings: RewriteSavings | None = None,
        delivery_key: str | None = None,
    ) -> int:
        """Store one exchange and its analysis; returns the row id (the earlier one for a known key)."""
        record = build_record(
            exchange,
            result,
            request_bytes=len(exchange.request_body) if request_bytes is None else request_bytes,
            response_bytes=len(exchange.response_body) if response_bytes is None else response_bytes,
            has_body=self.store_bodies and bool(exchange.request_body),
            savings=savings,
        )
        return self.append_record(record, exchange.request_body, delivery_key=delivery_key)

    def append_record(
        self,
        record: RequestRecord,
        request_body: bytes = b"",
        *,
        delivery_key: str | None = None,
        flight: str | None = None,
    ) -> int:
        """Store one record (its id is ignored; the body only when record.has_body); returns the row id.

        With `flight`, an in-flight record is the request's provisional row and any other record
        replaces that row in place (same id), so the table shows one row from forwarding to the end.
        """
        body = zlib.compress(request_body, 6) if record.has_body and request_body else None
        values = row_values(record)
        parts = pack_parts(record.anatomy)
        flight_key = FLIGHT_KEY + flight if flight else None
        provisional = record.in_flight
        with self._lock:
            self._check_identity()
            row_id = self._retry_busy(
                lambda conn: _insert(conn, values, parts, body, delivery_key, flight_key, provisional)
            )
            self._since_prune += 1
        if self._problem is not None:
            self._report(None)
        if self._since_prune >= PRUNE_EVERY_ROWS or time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            try:
                self.prune()
            except sqlite3.Error:
                log.exception("journal prune failed (the row was written)")
        return row_id

    def sweep_flights(self, alive: Callable[[int], bool] = pid_alive) -> int:
        """Provisional rows of proxies that are gone become "interrupted" rows; returns how many."""
        with self._lock:
            return self._retry_busy(lambda conn: _sweep(conn, alive))

    def prune(self, now: float | None = None) -> int:
        """Apply retention_days and max_rows (waiting out a lock); returns how many rows were removed."""
        with self._lock:
            removed = self._retry_busy(lambda conn: self._prune(conn, time.time() if now is None else now))
            self._since_prune = 0
            self._last_prune = time.monotonic()
        return removed

    def _prune_now(self, now: float) -> int:
        with self._lock:
            removed = self._prune(self._connection(), now)
            self._since_prune = 0
            self._last_prune = time.monotonic()
        return removed

    def _prune(self, conn: sqlite3.Connection, now: float) -> int:
        removed = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self.retention_days > 0:
                cutoff = now - self.retention_days * 86400.0
                removed += conn.execute("DELETE FROM requests WHERE ts < ?", (cutoff,)).rowcount
            if self.max_rows > 0:
                removed += conn.execute(
                    "DELETE FROM requests WHERE id <= (SELECT MAX(id) FROM requests) - ?", (self.max_rows,)
                ).rowcount
            if removed:
                conn.execute("DELETE FROM details WHERE id NOT IN (SELECT id FROM requests)")
                conn.execute(
                    "DELETE FROM deliveries WHERE row_id < (SELECT COALESCE(MIN(id), 0) FROM requests)"
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return removed

    def close(self) -> None:
        """Checkpoint and close."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # locked or full: the WAL is checkpointed by the next writer
                finally:
                    self._conn.close()
                    self._conn = None

    def _retry_busy(self, run: Callable[[sqlite3.Connection], int]) -> int:
        delay = 0.05
        while True:
            try:
                return run(self._connection())
            except sqlite3.OperationalError as exc:
                if not is_busy(exc):
                    raise
                self._report(f"journal {self.path} is locked by another process ({exc}); retrying")
                time.sleep(delay)
                delay = min(delay * 2, BUSY_RETRY_MAX_S)

    def _check_identity(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < IDENTITY_CHECK_S:
            return
        self._checked_at = now
        try:
            st = os.stat(self.path)
            same = (st.st_dev, st.st_ino) == self._identity and st.st_nlink > 0
        except FileNotFoundError:
            same = False
        if same:
            return
        log.error("journal %s was deleted or replaced while in use; reopening it", self.path)
        if self._conn is not None:
            # SQLite does not checkpoint a moved file on close: do it now, so a renamed journal is
            # complete and its WAL (still at the old name) is empty before a new file takes the name.
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            self._conn = None
        if not self.path.exists():
            for suffix in COMPANION_SUFFIXES:  # the deleted file's WAL must not be replayed into a new one
                with contextlib.suppress(FileNotFoundError):
                    self.path.with_name(self.path.name + suffix).unlink()
        self._open()
        self.reopened += 1
        self._report(f"journal {self.path} was deleted or replaced while in use: reopened it")

    def _report(self, problem: str | None) -> None:
        if problem == self._problem:
            return
        self._problem = problem
        if self.on_problem is not None:
            try:
                self.on_problem(problem)
            except Exception:
                log.exception("journal problem callback failed")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError(f"journal {self.path} is closed")
        return self._conn


def _insert(
    conn: sqlite3.Connection,
    values: tuple[object, ...],
    parts: bytes | None,
    body: bytes | None,
    key: str | None,
    flight_key: str | None = None,
    provisional: bool = False,
) -> int:
    conn.execute("BEGIN IMMEDIATE")
    try:
        if key is not None:
            known = conn.execute("SELECT row_id FROM deliveries WHERE key = ?", (key,)).fetchone()
            if known is not None:
                conn.execute("COMMIT")
                return int(known[0])
        row_id = 0
        if flight_key is not None:
            known = conn.execute("SELECT row_id FROM deliveries WHERE key = ?", (flight_key,)).fetchone()
            if known is not None and provisional:
                conn.execute("COMMIT")  # an announcement seen before (replayed): the row stands
                return int(known[0])
            if known is not None and conn.execute(UPDATE_SQL, (*values, int(known[0]))).rowcount:
                row_id = int(known[0])
                conn.execute("DELETE FROM details WHERE id = ?", (row_id,))
        if not row_id:
            row_id = int(conn.execute(INSERT_SQL, values).lastrowid or 0)
            if flight_key is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO deliveries (key, row_id) VALUES (?, ?)", (flight_key, row_id)
                )
        if parts is not None or body is not None:
            conn.execute(
                "INSERT INTO details (id, anatomy_parts, request_body) VALUES (?, ?, ?)",
                (row_id, parts, body),
            )
        if key is not None:
            conn.execute("INSERT INTO deliveries (key, row_id) VALUES (?, ?)", (key, row_id))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return row_id


def _sweep(conn: sqlite3.Connection, alive: Callable[[int], bool]) -> int:
    rows = conn.execute(
        "SELECT d.key, r.id FROM deliveries d JOIN requests r ON r.id = d.row_id "
        "WHERE d.key >= ? AND d.key < ? AND r.state = 'in_flight'",
        (FLIGHT_KEY, FLIGHT_KEY[:-1] + chr(ord(FLIGHT_KEY[-1]) + 1)),
    ).fetchall()
    gone = [(flight_pid(key), row_id) for key, row_id in rows]
    gone = [(pid, row_id) for pid, row_id in gone if pid is None or not alive(pid)]
    if not gone:
        return 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        for pid, row_id in gone:
            conn.execute(
                "UPDATE requests SET state = 'interrupted', error = COALESCE(error, ?) "
                "WHERE id = ? AND state = 'in_flight'",
                (interrupted_error(pid), row_id),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return len(gone)


def store_usage(
    path: Path | str,
    row_id: int,
    usage: Usage,
    error: str | None = None,
    cache_break: CacheBreak | None = None,
) -> bool:
    """Rewrite one row's usage (and error, cache break, when given): what the dashboard joins from the
    server log after the row was written (speeds; the server's prompt count and progress of a request cut
    off; why the server lost its cache)."""
    import orjson

    if not Path(path).is_file():
        return False  # connecting would create an empty database file
    try:
        conn = sqlite3.connect(str(path), timeout=5.0)
    except sqlite3.Error:
        return False
    try:
        with conn:
            text = orjson.dumps(usage.to_json()).decode()
            if error is None:
                cursor = conn.execute("UPDATE requests SET usage = ? WHERE id = ?", (text, row_id))
            else:
                cursor = conn.execute(
                    "UPDATE requests SET usage = ?, error = ? WHERE id = ?", (text, error, row_id)
                )
            if cache_break is not None:
                cb_text = orjson.dumps(cache_break.to_json()).decode()
                conn.execute("UPDATE requests SET cache_break = ? WHERE id = ?", (cb_text, row_id))
        return cursor.rowcount == 1
    except sqlite3.Error:  # a locked or pruned journal: the speeds stay in this dashboard only
        return False
    finally:
        conn.close()
