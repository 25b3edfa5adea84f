"""A full report: overall, per session, per day and per session-day summaries, plus the journal query."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from tui.core.anatomy.model import Anatomy
from tui.core.journal.schema import LIST_COLUMNS, connect, record_from_row
from tui.core.records import RequestRecord
from tui.core.report.prices import ReportSettings
from tui.core.report.summary import Summary, day_of, is_model_request, summarize

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_ANATOMY_COLUMN = [c.strip() for c in LIST_COLUMNS.split(",")].index("anatomy")


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds for a DURATION back from now (30m, 2h, 7d, 1w) or a local DATE (2026-11-20)."""
    now = time.time() if now is None else now
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_S[match.group(2).lower()]
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text.strip(), fmt).timestamp()
        except ValueError:
            continue
    raise ValueError(f"--since {text!r}: expected a duration like 2h, 1d, 7d or a date like 2026-11-20")


def load_records(
    path: Path, since_ts: float | None = None, session: str | None = None
) -> list[RequestRecord]:
    """Journal rows since a time and/or of one session, oldest first (anatomy without parts or tools)."""
    if not path.exists():
        return []
    clauses: list[str] = []
    params: list[Any] = []
    if since_ts is not None:
        clauses.append("ts >= ?")
        params.append(since_ts)
    if session is not None:
        clauses.append("session_id = ?")
        params.append(session)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    conn = connect(path, readonly=True)
    try:
        rows = conn.execute(f"SELECT {LIST_COLUMNS} FROM requests{where} ORDER BY id", params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()
    return [_light_record(row) for row in rows]


def _light_record(row: tuple[Any, ...]) -> RequestRecord:
    """record_from_row without the per-tool list, which reports never read (most of the parse time)."""
    raw = row[_ANATOMY_COLUMN]
    if not raw:
        return record_from_row(row)
    bare = (*row[:_ANATOMY_COLUMN], None, *row[_ANATOMY_COLUMN + 1:])
    data = orjson.loads(raw)
    data.pop("tools", None)
    return dataclasses.replace(record_from_row(bare), anatomy=Anatomy.from_json(data))


@dataclass(frozen=True)
class Report:
    """Everything `ctxbudget report` prints."""

    generated_ts: float
    since_ts: float | None
    session_filter: str | None
    overall: Summary
    sessions: tuple[Summary, ...]
    days: tuple[Summary, ...]
    session_days: tuple[Summary, ...]
    settings: ReportSettings
    # Per team user (model requests; user "" is the single user), in order of first appearance.
    users: tuple[Summary, ...] = ()
    user_sessions: dict[str, int] = field(default_factory=dict)  # sessions per user
    by: str = "session"  # the grouping the table, Markdown and CSV show: "session" or "user"

    def to_json(self) -> dict[str, Any]:
        """The `report --format json` contract."""
        return {
            "generated_ts": self.generated_ts,
            "since_ts": self.since_ts,
            "session_filter": self.session_filter,
            "prices": {
                "date": self.settings.prices_date,
                "note": self.settings.prices_note,
                "table": [p.__dict__ for p in self.settings.prices],
            },
            "overall": self.overall.to_json(),
            "sessions": [s.to_json() for s in self.sessions],
            "days": [s.to_json() for s in self.days],
            "session_days": [s.to_json() for s in self.session_days],
            "users": [s.to_json() for s in self.users],
        }


def build_report(
    records: Sequence[RequestRecord],
    settings: ReportSettings | None = None,
    *,
    since_ts: float | None = None,
    session: str | None = None,
    now: float | None = None,
    by: str = "session",
) -> Report:
    """Group rows by session, local day and session-day (sessions ordered by first appearance)."""
    settings = settings or ReportSettings()
    prices = settings.prices
    rows = [
        r for r in records
        if (since_ts is None or r.ts >= since_ts) and (session is None or r.session_id == session)
    ]
    # Only model requests carry a session; health checks and GETs stay in `overall` alone.
    by_session: dict[str, list[RequestRecord]] = {}
    by_day: dict[str, list[RequestRecord]] = {}
    by_pair: dict[tuple[str, str], list[RequestRecord]] = {}
    by_user: dict[str, list[RequestRecord]] = {}
    for r in rows:
        day = day_of(r.ts)
        by_day.setdefault(day, []).append(r)
        if is_model_request(r):
            by_session.setdefault(r.session_id, []).append(r)
            by_pair.setdefault((r.session_id, day), []).append(r)
            by_user.setdefault(r.user, []).append(r)
    return Report(
        generated_ts=time.time() if now is None else now,
        since_ts=since_ts,
        session_filter=session,
        overall=summarize(rows, prices=prices),
        sessions=tuple(summarize(v, session=k, prices=prices) for k, v in by_session.items()),
        days=tuple(summarize(by_day[d], day=d, prices=prices) for d in sorted(by_day)),
        session_days=tuple(
            summarize(v, session=s, day=d, prices=prices)
            for (s, d), v in sorted(by_pair.items(), key=lambda kv: (kv[0][1], kv[1][0].id))
        ),
        settings=settings,
        users=tuple(summarize(v, user=k, prices=prices) for k, v in by_user.items()),
        user_sessions={k: len({r.session_id for r in v}) for k, v in by_user.items()},
        by=by,
    )
