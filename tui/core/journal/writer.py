"""The traffic journal: one SQLite row per forwarded request, written by the pipeline thread."""

from __future__ import annotations

import sqlite3
import threading
import time
import zlib
from pathlib import Path

from tui.core.anatomy.analyze import AnalysisResult
from tui.core.anatomy.exchange import Exchange
from tui.core.journal.reader import JournalReader
from tui.core.journal.schema import INSERT_SQL, connect, pack_parts, row_values
from tui.core.records import RewriteSavings

__all__ = ["Journal", "JournalReader"]

PRUNE_EVERY_ROWS = 500
PRUNE_EVERY_S = 600.0


class Journal:
    """Append-only writer (one per process); commits every row so a killed proxy loses nothing."""

    def __init__(
        self,
        path: Path | str,
        *,
        store_bodies: bool = False,
        retention_days: float = 30.0,
        max_rows: int = 200_000,
    ) -> None:
        self.path = Path(path)
        self.store_bodies = store_bodies
        self.retention_days = retention_days
        self.max_rows = max_rows
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = connect(self.path)
        self._since_prune = 0
        self._last_prune = 0.0
        self.prune()

    def append(
        self,
        exchange: Exchange,
        result: AnalysisResult,
        *,
        request_bytes: int | None = None,
        response_bytes: int | None = None,
        savings: RewriteSavings | None = None,
    ) -> int:
        """Store one exchange and its analysis; returns the new row id."""
        keep_body = self.store_bodies and bool(exchange.request_body)
        body = zlib.compress(exchange.request_body, 6) if keep_body else None
        values = row_values(
            exchange,
            result,
            request_bytes=len(exchange.request_body) if request_bytes is None else request_bytes,
            response_bytes=len(exchange.response_body) if response_bytes is None else response_bytes,
            has_body=body is not None,
            savings=savings,
        )
        parts = pack_parts(result.anatomy)
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                row_id = int(conn.execute(INSERT_SQL, values).lastrowid or 0)
                if parts is not None or body is not None:
                    conn.execute(
                        "INSERT INTO details (id, anatomy_parts, request_body) VALUES (?, ?, ?)",
                        (row_id, parts, body),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY_ROWS or time.monotonic() - self._last_prune > PRUNE_EVERY_S:
            self.prune()
        return row_id

    def prune(self, now: float | None = None) -> int:
        """Apply retention_days and max_rows; returns how many rows were removed."""
        now = time.time() if now is None else now
        removed = 0
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN")
            try:
                if self.retention_days > 0:
                    cutoff = now - self.retention_days * 86400.0
                    removed += conn.execute("DELETE FROM requests WHERE ts < ?", (cutoff,)).rowcount
                if self.max_rows > 0:
                    removed += conn.execute(
                        "DELETE FROM requests WHERE id <= (SELECT MAX(id) FROM requests) - ?",
                        (self.max_rows,),
                    ).rowcount
                if removed:
                    conn.execute("DELETE FROM details WHERE id NOT IN (SELECT id FROM requests)")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._since_prune = 0
            self._last_prune = time.monotonic()
        return removed

    def close(self) -> None:
        """Checkpoint and close."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                finally:
                    self._conn.close()
                    self._conn = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise sqlite3.ProgrammingError(f"journal {self.path} is closed")
        return self._conn
