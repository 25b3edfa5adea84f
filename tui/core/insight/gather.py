"""Read one session from the journal and the server's figures, and build its ranked findings."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.core.insight import findings as rows_findings
from tui.core.insight.model import Finding, FindingsReport, rank
from tui.core.journal.reader import JournalReader
from tui.core.journal.schema import connect, list_columns, record_from_row
from tui.core.records import RequestRecord

if TYPE_CHECKING:
    from tui.core.config import Settings
    from tui.core.tokens import TokenCounter


# Breaks a stabilizer pattern can prevent (found by comparing the two stored bodies).
PATTERN_CAUSES = frozenset({"system prompt", "billing header"})


class SessionNotFound(LookupError):
    """No journal row belongs to the asked session."""


@dataclass(frozen=True)
class ServerFigures:
    """What the server says about itself (None: not reachable or not exposed)."""

    n_ctx: int | None = None
    prompt_per_second: float | None = None


def ask_server(settings: Settings) -> ServerFigures:
    """The per-slot n_ctx (/props) and measured prompt speed (/metrics) of the configured upstream."""
    from tui.core.insight.window import measured_prompt_speed, slot_n_ctx

    upstream, key = settings.proxy.upstream, settings.server.api_key
    return ServerFigures(slot_n_ctx(upstream, key, 1.0), measured_prompt_speed(upstream, key))


def session_rows(path: Path, session: str | None) -> list[RequestRecord]:
    """Rows of one session (an id or a unique prefix; default: the newest agent session), oldest first."""
    conn = connect(path, readonly=True)
    try:
        return _session_rows(conn, session)
    finally:
        conn.close()


def _session_rows(conn: sqlite3.Connection, session: str | None) -> list[RequestRecord]:
    if session is None:
        row = conn.execute(
            "SELECT session_id FROM requests WHERE kind IN ('main', 'subagent') ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return []
        session = str(row[0])
    else:
        query = "SELECT DISTINCT session_id FROM requests WHERE session_id LIKE ? || '%'"
        found = [r[0] for r in conn.execute(query, (session,))]
        if len(found) != 1:
            raise SessionNotFound(
                f"session {session!r} matches {len(found)} sessions"
                + (f": {', '.join(found[:5])}" if found else "")
            )
        session = str(found[0])
    columns = list_columns(conn)
    rows = conn.execute(
        f"SELECT {columns} FROM requests WHERE session_id = ? ORDER BY id", (session,)
    ).fetchall()
    return [record_from_row(row) for row in rows]


def _body(reader: JournalReader, row_id: int) -> dict[str, Any] | None:
    raw = reader.body(row_id)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _preventions(reader: JournalReader, records: list[RequestRecord]) -> tuple[dict[int, str], bool]:
    from tui.core.insight.measured import prevention

    out: dict[int, str] = {}
    missing = False
    for i, r in enumerate(records):
        if (
            r.cache_break is None
            or rows_findings.break_cause(r.cache_break.description) not in PATTERN_CAUSES
        ):
            continue
        before = next((p for p in reversed(records[:i]) if p.kind == r.kind and p.status < 400), None)
        old, new = (_body(reader, before.id) if before else None), _body(reader, r.id)
        if old is None or new is None:
            missing = True
            continue
        fix = prevention(old, new, r.dialect)
        if fix:
            out[r.id] = fix
    return out, missing


def build_findings(
    path: Path,
    settings: Settings,
    session: str | None = None,
    server: ServerFigures | None = None,
    counter: TokenCounter | None = None,
) -> FindingsReport:
    """Findings of one session, ranked; raises SessionNotFound for an unknown session."""
    from tui.core.insight.measured import tool_results

    server = server if server is not None else ask_server(settings)
    reader = JournalReader(path)
    try:
        records = session_rows(path, session)
        if not records:
            return FindingsReport(session or "", 0, None, (), ("the journal has no agent session yet",))
        notes: list[str] = []
        speed = rows_findings.prompt_speed(records) or server.prompt_per_second
        if speed is None:
            notes.append(
                "prompt speed unknown (no timings in the journal, no /metrics): costs in tokens only"
            )
        found: list[Finding] = []
        found += rows_findings.overflows(records, server.n_ctx)
        found += rows_findings.mcp_unused(records, speed)
        preventions, missing = _preventions(reader, records)
        if missing:
            notes.append(
                "some cache-break fixes cannot be suggested: the bodies were not kept (store_bodies)"
            )
        found += rows_findings.cache_breaks(records, speed, preventions)
        found += rows_findings.history_share(records, server.n_ctx)
        latest = next(
            (r for r in reversed(records) if r.kind == "main" and r.status < 400 and r.anatomy), None
        )
        if latest is not None:
            full = reader.get(latest.id) or latest
            body = _body(reader, latest.id)
            if body is not None and counter is None:
                from tui.core.tokens import make_counter

                counter = make_counter(
                    settings.anatomy.counter, settings.proxy.upstream, settings.server.api_key
                )
            found += tool_results(full, body, counter, settings.transforms)
        return FindingsReport(records[-1].session_id, len(records), speed, rank(found), tuple(notes))
    finally:
        reader.close()
