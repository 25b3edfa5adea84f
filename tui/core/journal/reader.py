"""Reading the journal from any process, with a cheap check for new rows (PRAGMA data_version)."""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path

from tui.core.journal.schema import connect, list_columns, record_from_row, select_columns, unpack_parts
from tui.core.records import COLUMNS, RequestRecord


class JournalUnreadable(Exception):
    """The file at the journal path is not a readable ctxbudget journal (the message says why)."""


def check_readable(path: Path) -> None:
    """Raise JournalUnreadable unless `path` is a journal this version can read."""
    try:
        conn = connect(path, readonly=True)
    except sqlite3.Error as exc:
        raise JournalUnreadable(f"cannot open the journal {path}: {exc}") from exc
    try:
        conn.execute("SELECT id FROM requests LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        raise JournalUnreadable(
            f"{path} is not a ctxbudget journal ({exc}); pass --journal PATH or move the file aside"
        ) from exc
    finally:
        conn.close()


class JournalReader:
    """Read-only view of a journal file; a missing file reads as empty until it appears."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._data_version: int | None = None
        self.last_id = 0
        self._columns = ""

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            try:
                conn = connect(self.path, readonly=True)
                conn.execute("SELECT 1 FROM requests LIMIT 1")
            except sqlite3.Error:
                return None  # created but not initialised yet
            self._conn = conn
            self._columns = list_columns(conn)
        return self._conn

    def latest(self, n: int = 50) -> list[RequestRecord]:
        """The newest n rows, oldest first (parts not loaded)."""
        conn = self._connection()
        if conn is None or n <= 0:
            return []
        rows = conn.execute(
            f"SELECT {self._columns} FROM requests ORDER BY id DESC LIMIT ?", (n,)
        ).fetchall()
        records = [record_from_row(row) for row in reversed(rows)]
        if records:
            self.last_id = max(self.last_id, records[-1].id)
        return records

    def since(self, row_id: int, limit: int = 1000) -> list[RequestRecord]:
        """Rows with id > row_id, oldest first (parts not loaded)."""
        conn = self._connection()
        if conn is None:
            return []
        rows = conn.execute(
            f"SELECT {self._columns} FROM requests WHERE id > ? ORDER BY id LIMIT ?", (row_id, limit)
        ).fetchall()
        records = [record_from_row(row) for row in rows]
        if records:
            self.last_id = max(self.last_id, records[-1].id)
        return records

    def rows(self, ids: list[int]) -> list[RequestRecord]:
        """These rows as they are now (a provisional row may have been replaced by its final one)."""
        conn = self._connection()
        if conn is None or not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        found = conn.execute(f"SELECT {self._columns} FROM requests WHERE id IN ({marks}) ORDER BY id", ids)
        return [record_from_row(row) for row in found.fetchall()]

    def get(self, row_id: int) -> RequestRecord | None:
        """One row whole, with its anatomy parts and headers (for the detail view)."""
        conn = self._connection()
        if conn is None:
            return None
        columns = select_columns(conn, COLUMNS)
        row = conn.execute(f"SELECT {columns} FROM requests WHERE id = ?", (row_id,)).fetchone()
        if row is None:
            return None
        blob = conn.execute("SELECT anatomy_parts FROM details WHERE id = ?", (row_id,)).fetchone()
        return record_from_row(row, unpack_parts(blob[0] if blob else None), COLUMNS)

    def body(self, row_id: int) -> bytes | None:
        """The stored request body (only when journal.store_bodies was on)."""
        conn = self._connection()
        if conn is None:
            return None
        row = conn.execute("SELECT request_body FROM details WHERE id = ?", (row_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        return zlib.decompress(row[0])

    def count(self, *, finished: bool = False) -> int:
        """Number of rows (finished: leaving out the provisional rows of requests still in flight)."""
        conn = self._connection()
        if conn is None:
            return 0
        where = " WHERE state != 'in_flight'" if finished and "NULL AS state" not in self._columns else ""
        return int(conn.execute(f"SELECT COUNT(*) FROM requests{where}").fetchone()[0])

    def changed(self) -> bool:
        """Whether another connection committed since the last call (one cheap PRAGMA)."""
        conn = self._connection()
        if conn is None:
            return False
        version = int(conn.execute("PRAGMA data_version").fetchone()[0])
        changed = version != self._data_version
        self._data_version = version
        if changed and "NULL AS" in self._columns:
            self._columns = list_columns(conn)  # a writer may have migrated the file meanwhile
        return changed

    def poll(self) -> list[RequestRecord]:
        """New rows since the last rows this reader returned ([] quickly when nothing changed)."""
        if not self.changed():
            return []
        return self.since(self.last_id)

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
