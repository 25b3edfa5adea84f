"""The journal's SQLite schema (derived from records.COLUMNS), connection setup and row mapping."""

from __future__ import annotations

import dataclasses
import sqlite3
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from tui.core.anatomy.model import Anatomy, Part
from tui.core.records import COLUMNS, FIELD_DEFAULTS, Column, RequestRecord

SCHEMA_VERSION = 5


def _column_sql(column: Column) -> str:
    """`name TYPE [NOT NULL [DEFAULT v]]`: a field with a plain default is NOT NULL with that default."""
    if column.name == "id":
        return "id INTEGER PRIMARY KEY AUTOINCREMENT"
    if column.name not in FIELD_DEFAULTS:
        return f"{column.name} {column.sql} NOT NULL"
    default = FIELD_DEFAULTS[column.name]
    if isinstance(default, bool):
        return f"{column.name} {column.sql} NOT NULL DEFAULT {int(default)}"
    if isinstance(default, str):
        return f"{column.name} {column.sql} NOT NULL DEFAULT '{default}'"
    if isinstance(default, int | float):
        return f"{column.name} {column.sql} NOT NULL DEFAULT {default}"
    return f"{column.name} {column.sql}"  # None or a factory default: NULL reads back as the default


COLUMN_SQL: dict[str, str] = {c.name: _column_sql(c) for c in COLUMNS}

# Columns added after version 1 (ALTER TABLE ADD COLUMN on older journals): name -> SQL type.
ADDED_COLUMNS: tuple[tuple[str, str], ...] = tuple((c.name, c.sql) for c in COLUMNS if c.since > 1)

_COLUMN_LINES = ",\n    ".join(COLUMN_SQL.values())
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS requests (
    {_COLUMN_LINES}
);
CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts);
CREATE INDEX IF NOT EXISTS requests_session ON requests(session_id, id);
-- Large per-row blobs live apart so listing rows never reads them.
CREATE TABLE IF NOT EXISTS details (
    id INTEGER PRIMARY KEY,
    anatomy_parts BLOB,
    request_body BLOB
);
"""

LISTED: tuple[Column, ...] = tuple(c for c in COLUMNS if c.listed)
# Columns read for listings (no headers, no blobs), in record_from_row's default order.
LIST_COLUMNS = ", ".join(c.name for c in LISTED)

_INSERTED = tuple(c for c in COLUMNS if c.name != "id")
INSERT_SQL = (
    f"INSERT INTO requests ({', '.join(c.name for c in _INSERTED)}) "
    f"VALUES ({', '.join('?' for _ in _INSERTED)})"
)


# Replaces every column but id of one row (the final row of a request over its provisional one).
UPDATE_SQL = f"UPDATE requests SET {', '.join(c.name + ' = ?' for c in _INSERTED)} WHERE id = ?"


def _present(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(requests)")}


def select_columns(conn: sqlite3.Connection, columns: Sequence[Column] = LISTED) -> str:
    """The SELECT list for these columns in this file: columns an old journal lacks read as NULL."""
    present = _present(conn)
    return ", ".join(c.name if c.name in present else f"NULL AS {c.name}" for c in columns)


def list_columns(conn: sqlite3.Connection) -> str:
    """LIST_COLUMNS for this file (an old, not yet migrated journal reads its missing columns as NULL)."""
    return select_columns(conn, LISTED)


def migrate(conn: sqlite3.Connection) -> None:
    """Add the columns newer versions write to an older journal (rows keep NULL or the default there)."""
    present = _present(conn)
    for column in COLUMNS:
        if column.name not in present:
            conn.execute(f"ALTER TABLE requests ADD COLUMN {COLUMN_SQL[column.name]}")


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    """Open the journal; the writer creates it (WAL, synchronous=NORMAL survives a killed process)."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=5.0)
        conn.execute("PRAGMA query_only = ON")
        return conn
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, check_same_thread=False, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        conn.close()
        raise sqlite3.DatabaseError(
            f"{path}: journal schema {version} is newer than this ctxbudget ({SCHEMA_VERSION}); upgrade"
        )
    conn.executescript(SCHEMA)
    migrate(conn)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


def _dumps(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


def _to_sql(column: Column, value: Any) -> Any:
    plain = column.to_plain(value)
    if column.as_json_text:
        return None if plain is None or plain == [] else _dumps(plain)
    return int(plain) if isinstance(plain, bool) else plain


def _reader(column: Column) -> Callable[[Any], Any]:
    """SQL value -> record value (SQLite already returns the right scalar types, bools as 0/1)."""
    if column.as_json_text:
        from_plain = column.from_plain
        return lambda value: from_plain(orjson.loads(value) if value else None)
    if isinstance(FIELD_DEFAULTS.get(column.name), bool):
        return bool
    return _same


def _same(value: Any) -> Any:
    return value


_READERS: dict[str, Callable[[Any], Any]] = {c.name: _reader(c) for c in COLUMNS}


def row_values(record: RequestRecord) -> tuple[Any, ...]:
    """Values for one INSERT_SQL (every column but id, in COLUMNS order)."""
    return tuple(_to_sql(c, getattr(record, c.name)) for c in _INSERTED)


def pack_parts(anatomy: Anatomy | None) -> bytes | None:
    """The anatomy's parts as zlib-compressed JSON (None when there are none)."""
    if anatomy is None or not anatomy.parts:
        return None
    return zlib.compress(orjson.dumps([p.to_json() for p in anatomy.parts]), 6)


def unpack_parts(blob: bytes | None) -> tuple[Part, ...]:
    """Inverse of pack_parts."""
    if not blob:
        return ()
    data = orjson.loads(zlib.decompress(blob))
    return tuple(
        Part(
            p["category"], p["label"], int(p["tokens"]),
            p.get("server"), p.get("tool"), p.get("message_index"),
        )
        for p in data
    )


def record_from_row(
    row: Sequence[Any], parts: tuple[Part, ...] = (), columns: Sequence[Column] = LISTED
) -> RequestRecord:
    """Map a row of these columns (LIST_COLUMNS by default), plus optional parts, to a RequestRecord."""
    values = {c.name: _READERS[c.name](v) for c, v in zip(columns, row, strict=True)}
    anatomy = values.get("anatomy")
    if anatomy is not None and parts:
        values["anatomy"] = dataclasses.replace(anatomy, parts=parts)
    return RequestRecord(**values)
