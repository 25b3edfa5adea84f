"""One record schema: every RequestRecord field survives the journal, the JSON contract and the demo codec."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from pathlib import Path

import orjson

from tui.core.anatomy.model import CATEGORIES, Anatomy, Part, ToolCost
from tui.core.feed.codec import record_from_json, record_to_json
from tui.core.journal.reader import JournalReader
from tui.core.journal.schema import SCHEMA_VERSION, connect
from tui.core.journal.writer import Journal
from tui.core.records import (
    COLUMNS,
    FIELD_DEFAULTS,
    CacheBreak,
    RequestRecord,
    TransformSaving,
    Usage,
    record_from_plain,
)

# The journal's CREATE TABLE as version 1 wrote it (a file format older journals on disk still have).
V1_SCHEMA = """
CREATE TABLE requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL,
    status INTEGER NOT NULL, session_id TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL DEFAULT 'other',
    model TEXT NOT NULL DEFAULT '', dialect TEXT NOT NULL DEFAULT '', stream INTEGER NOT NULL DEFAULT 0,
    ttfb_ms REAL, total_ms REAL, request_bytes INTEGER NOT NULL DEFAULT 0,
    response_bytes INTEGER NOT NULL DEFAULT 0, body_truncated INTEGER NOT NULL DEFAULT 0,
    has_body INTEGER NOT NULL DEFAULT 0, anatomy TEXT, usage TEXT, cache_break TEXT,
    unparsed_reason TEXT, error TEXT, request_headers TEXT, response_headers TEXT
);
CREATE TABLE details (id INTEGER PRIMARY KEY, anatomy_parts BLOB, request_body BLOB);
"""


def full_record(row_id: int = 7) -> RequestRecord:
    """A record with every field set to a value other than its default."""
    anatomy = Anatomy(
        dialect="anthropic",
        counter="tiktoken-cl100k",
        exact=True,
        categories={name: 10 + i for i, name in enumerate(CATEGORIES)},
        mcp_servers={"fs": {"tools": 2, "tokens": 40}},
        tools=(ToolCost("Bash", None, 30), ToolCost("mcp__fs__read_file", "fs", 20)),
        tool_results_by_tool={"Bash": 12},
        image_count=1,
        parts=(Part("system", "system[0]", 100), Part("tool_results", "r", 7, "fs", "read", 3)),
        model="qwen",
        stream=True,
        message_count=4,
    )
    return RequestRecord(
        id=row_id,
        ts=time.time() + 0.25,  # recent: retention keeps it
        method="POST",
        path="/v1/messages?beta=true",
        status=201,
        session_id="sess-1",
        kind="subagent",
        model="qwen",
        dialect="anthropic",
        stream=True,
        ttfb_ms=12.5,
        total_ms=80.25,
        request_bytes=150_000,
        response_bytes=4096,
        body_truncated=True,
        has_body=True,
        anatomy=anatomy,
        usage=Usage(5000, 4000, 50, 900.5, 40.25, 120.0, 800.0, "end_turn"),
        cache_break=CacheBreak("system[0]", "billing line changed", 1200, 800),
        unparsed_reason="partly parsed",
        error="client disconnected",
        request_headers={"content-type": "application/json", "x-api-key": "[redacted]"},
        response_headers={"content-type": "text/event-stream"},
        transforms=(TransformSaving("stabilize", 100, 90), TransformSaving("slim_results")),
        transform_saved_tokens=10,
        mcp_saved_tokens=40,
        compaction_saved_tokens=3000,
        user="alice",
        state="interrupted",
        compaction_folded="{\"role\":\"user\",\"content\":\"folded turn\"}",
    )


def test_the_full_record_sets_every_field() -> None:
    record = full_record()
    fields = dataclasses.fields(record)
    unset = [f.name for f in fields if FIELD_DEFAULTS.get(f.name) == getattr(record, f.name)]
    assert unset == []


def test_every_record_field_is_a_column_and_back() -> None:
    assert [c.name for c in COLUMNS] == [f.name for f in dataclasses.fields(RequestRecord)]


def test_journal_round_trip_keeps_every_field(tmp_path: Path) -> None:
    record = full_record()
    journal = Journal(tmp_path / "j.sqlite3", store_bodies=True)
    row_id = journal.append_record(record, b'{"model": "qwen"}')
    journal.close()
    reader = JournalReader(tmp_path / "j.sqlite3")
    assert reader.get(row_id) == dataclasses.replace(record, id=row_id)
    assert reader.body(row_id) == b'{"model": "qwen"}'
    # Listings leave out the headers, the parts and the folded turns, and nothing else.
    (listed,) = reader.latest(1)
    assert listed == dataclasses.replace(
        record,
        id=row_id,
        request_headers={},
        response_headers={},
        compaction_folded=None,
        anatomy=dataclasses.replace(record.anatomy, parts=()) if record.anatomy else None,
    )
    reader.close()


def test_json_contract_round_trip_keeps_its_fields() -> None:
    record = full_record()
    data = orjson.loads(orjson.dumps(record.to_json()))
    assert data["session"] == "sess-1" and "has_body" not in data and "request_headers" not in data
    back = record_from_plain(data)
    assert back == dataclasses.replace(
        record,
        body_truncated=False,
        has_body=False,
        request_headers={},
        response_headers={},
        compaction_folded=None,
        anatomy=dataclasses.replace(record.anatomy, parts=()) if record.anatomy else None,
    )


def test_demo_codec_round_trip_keeps_every_field() -> None:
    record = full_record()
    assert record_from_json(orjson.loads(orjson.dumps(record_to_json(record)))) == record


def test_records_default_to_the_journal_column_defaults() -> None:
    bare = record_from_json({"id": 1, "ts": 2.0, "method": "GET", "path": "/", "status": 200})
    assert bare == RequestRecord(1, 2.0, "GET", "/", 200)
    assert bare.kind == "other"


def test_a_version_1_journal_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA)
    conn.execute(
        "INSERT INTO requests (ts, method, path, status, kind, request_headers) VALUES (?, ?, ?, ?, ?, ?)",
        (time.time(), "POST", "/v1/messages", 200, "main", '{"a": "b"}'),
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    reader = JournalReader(path)
    (before,) = reader.latest(1)  # an old file reads before any writer migrated it
    assert (before.kind, before.transforms, before.transform_saved_tokens) == ("main", (), None)
    reader.close()
    connect(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    conn.close()
    assert columns == {c.name for c in COLUMNS}
    reader = JournalReader(path)
    old = reader.get(1)
    assert old is not None and old.request_headers == {"a": "b"} and old.mcp_saved_tokens is None
    journal = Journal(path)
    new_id = journal.append_record(full_record())
    journal.close()
    assert [r.id for r in reader.latest(5)] == [1, new_id]
    reader.close()
