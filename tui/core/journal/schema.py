"""The journal's SQLite schema, connection setup and the mapping between rows and RequestRecord."""

from __future__ import annotations

import dataclasses
import sqlite3
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from tui.core.anatomy.model import Anatomy, Part
from tui.core.records import CacheBreak, RequestRecord, RewriteSavings, TransformSaving, Usage

if TYPE_CHECKING:  # readers (the dashboard) must not import the analyzer, its counters and httpx
    from tui.core.anatomy.analyze import AnalysisResult
    from tui.core.anatomy.exchange import Exchange

SCHEMA_VERSION = 2

# Columns added after version 1 (ALTER TABLE ADD COLUMN on older journals): name -> SQL type.
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("transforms", "TEXT"),
    ("transform_saved_tokens", "INTEGER"),
    ("mcp_saved_tokens", "INTEGER"),
    ("compaction_saved_tokens", "INTEGER"),
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    session_id TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT 'other',
    model TEXT NOT NULL DEFAULT '',
    dialect TEXT NOT NULL DEFAULT '',
    stream INTEGER NOT NULL DEFAULT 0,
    ttfb_ms REAL,
    total_ms REAL,
    request_bytes INTEGER NOT NULL DEFAULT 0,
    response_bytes INTEGER NOT NULL DEFAULT 0,
    body_truncated INTEGER NOT NULL DEFAULT 0,
    has_body INTEGER NOT NULL DEFAULT 0,
    anatomy TEXT,
    usage TEXT,
    cache_break TEXT,
    unparsed_reason TEXT,
    error TEXT,
    request_headers TEXT,
    response_headers TEXT,
    transforms TEXT,
    transform_saved_tokens INTEGER,
    mcp_saved_tokens INTEGER,
    compaction_saved_tokens INTEGER
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

# Columns read for listings (no blobs); their order matches record_from_row.
LIST_COLUMNS = (
    "id, ts, method, path, status, session_id, kind, model, dialect, stream, ttfb_ms, total_ms, "
    "request_bytes, response_bytes, anatomy, usage, cache_break, unparsed_reason, error, has_body, "
    "transforms, transform_saved_tokens, mcp_saved_tokens, compaction_saved_tokens"
)


def list_columns(conn: sqlite3.Connection) -> str:
    """LIST_COLUMNS for this file: columns an old, not yet migrated journal lacks read as NULL."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    missing = [name for name, _ in ADDED_COLUMNS if name not in present]
    if not missing:
        return LIST_COLUMNS
    return ", ".join(
        f"NULL AS {c}" if c in missing else c for c in (c.strip() for c in LIST_COLUMNS.split(","))
    )


def migrate(conn: sqlite3.Connection) -> None:
    """Add the columns newer versions write to an older journal (rows keep NULL there)."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    for name, kind in ADDED_COLUMNS:
        if name not in present:
            conn.execute(f"ALTER TABLE requests ADD COLUMN {name} {kind}")


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


def _headers_json(headers: dict[str, str]) -> str:
    """Headers as JSON; bytes that were not UTF-8 (surrogate-escaped by aiohttp) are stored as \\xNN."""
    return orjson.dumps({_text(k): _text(v) for k, v in headers.items()}).decode()


def _text(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def row_values(
    exchange: Exchange,
    result: AnalysisResult,
    *,
    request_bytes: int,
    response_bytes: int,
    has_body: bool,
    savings: RewriteSavings | None = None,
) -> tuple[Any, ...]:
    """Values for one INSERT into `requests` (in SCHEMA column order, without id)."""
    anatomy = result.anatomy.to_json() if result.anatomy else None
    saved = savings or RewriteSavings()
    return (
        exchange.started,
        exchange.method,
        exchange.path,
        exchange.status,
        result.session_id,
        result.kind,
        result.model,
        result.dialect,
        int(result.stream),
        exchange.ttfb_ms,
        exchange.total_ms,
        request_bytes,
        response_bytes,
        int(exchange.body_truncated),
        int(has_body),
        _dumps(anatomy),
        _dumps(result.usage.to_json()),
        _dumps(result.cache_break.to_json() if result.cache_break else None),
        result.unparsed_reason,
        exchange.error,
        _headers_json(exchange.request_headers),
        _headers_json(exchange.response_headers),
        _dumps([t.to_json() for t in saved.transforms]) if saved.transforms else None,
        saved.transform_saved_tokens,
        saved.mcp_saved_tokens,
        saved.compaction_saved_tokens,
    )


INSERT_SQL = (
    "INSERT INTO requests (ts, method, path, status, session_id, kind, model, dialect, stream, ttfb_ms, "
    "total_ms, request_bytes, response_bytes, body_truncated, has_body, anatomy, usage, cache_break, "
    "unparsed_reason, error, request_headers, response_headers, transforms, transform_saved_tokens, "
    "mcp_saved_tokens, compaction_saved_tokens) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


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


def record_from_row(row: tuple[Any, ...], parts: tuple[Part, ...] = ()) -> RequestRecord:
    """Map a LIST_COLUMNS row (plus optional parts) to a RequestRecord."""
    (rid, ts, method, path, status, session_id, kind, model, dialect, stream, ttfb_ms, total_ms,
     request_bytes, response_bytes, anatomy, usage, cache_break, unparsed_reason, error, has_body,
     transforms, transform_saved, mcp_saved, compaction_saved) = row
    parsed = Anatomy.from_json(orjson.loads(anatomy)) if anatomy else None
    if parsed is not None and parts:
        parsed = dataclasses.replace(parsed, parts=parts)
    return RequestRecord(
        id=int(rid),
        ts=float(ts),
        method=method,
        path=path,
        status=int(status),
        session_id=session_id,
        kind=kind,
        model=model,
        dialect=dialect,
        stream=bool(stream),
        ttfb_ms=ttfb_ms,
        total_ms=total_ms,
        request_bytes=int(request_bytes),
        response_bytes=int(response_bytes),
        anatomy=parsed,
        usage=Usage.from_json(orjson.loads(usage)) if usage else Usage(),
        cache_break=CacheBreak.from_json(orjson.loads(cache_break)) if cache_break else None,
        unparsed_reason=unparsed_reason,
        error=error,
        has_body=bool(has_body),
        transforms=_transforms(transforms),
        transform_saved_tokens=transform_saved,
        mcp_saved_tokens=mcp_saved,
        compaction_saved_tokens=compaction_saved,
    )


def _transforms(text: str | None) -> tuple[TransformSaving, ...]:
    return tuple(TransformSaving.from_json(t) for t in orjson.loads(text)) if text else ()


def record_for(
    row_id: int,
    exchange: Exchange,
    result: AnalysisResult,
    *,
    request_bytes: int,
    response_bytes: int,
    has_body: bool,
    savings: RewriteSavings | None = None,
) -> RequestRecord:
    """The RequestRecord for a row just written, built without reading it back (parts included)."""
    saved = savings or RewriteSavings()
    return RequestRecord(
        id=row_id,
        ts=exchange.started,
        method=exchange.method,
        path=exchange.path,
        status=exchange.status,
        session_id=result.session_id,
        kind=result.kind,
        model=result.model,
        dialect=result.dialect,
        stream=result.stream,
        ttfb_ms=exchange.ttfb_ms,
        total_ms=exchange.total_ms,
        request_bytes=request_bytes,
        response_bytes=response_bytes,
        anatomy=result.anatomy,
        usage=result.usage,
        cache_break=result.cache_break,
        unparsed_reason=result.unparsed_reason,
        error=exchange.error,
        has_body=has_body,
        transforms=saved.transforms,
        transform_saved_tokens=saved.transform_saved_tokens,
        mcp_saved_tokens=saved.mcp_saved_tokens,
        compaction_saved_tokens=saved.compaction_saved_tokens,
    )
