"""The journal row: one forwarded request with its anatomy, accounting and cache-break info."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tui.core.anatomy.model import Anatomy


@dataclass(frozen=True)
class CacheBreak:
    """Where a request first differs from the previous one in its conversation."""

    where: str
    description: str
    reusable_prefix_tokens: int  # server tokens (template overhead included) when the server's count is known
    server_reused_tokens: int | None = None
    # "content": the request changed; "server": content unchanged but the server's cache was lost
    # (eviction, restart, host-cache miss: the dashboard explains it from the log).
    cause: str = "content"

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "where": self.where,
            "description": self.description,
            "reusable_prefix_tokens": self.reusable_prefix_tokens,
            "server_reused_tokens": self.server_reused_tokens,
            "cause": self.cause,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CacheBreak:
        """Rebuild from `to_json` output."""
        return cls(
            where=str(data.get("where", "")),
            description=str(data.get("description", "")),
            reusable_prefix_tokens=int(data.get("reusable_prefix_tokens", 0)),
            server_reused_tokens=data.get("server_reused_tokens"),
            cause=str(data.get("cause") or "content"),
        )


@dataclass(frozen=True)
class Usage:
    """What the server reported about a response (any field may be unknown)."""

    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    prompt_per_second: float | None = None
    gen_per_second: float | None = None
    prompt_ms: float | None = None
    gen_ms: float | None = None
    stop_reason: str | None = None
    # Speculative decoding (response timings draft_n / draft_n_accepted, else the log's print_timing line).
    draft_tokens: int | None = None
    draft_accepted: int | None = None
    # The model the response names (llama-server: its alias or file; a router: the model that answered).
    response_model: str | None = None

    @property
    def draft_acceptance(self) -> float | None:
        """Share of drafted tokens the target model accepted (None without speculative decoding)."""
        if not self.draft_tokens or self.draft_accepted is None:
            return None
        return self.draft_accepted / self.draft_tokens

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Usage:
        """Rebuild from `to_json` output."""
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class TransformSaving:
    """Tokens of the forwarded prompt before and after one transform (None: not measured)."""

    name: str
    tokens_before: int | None = None
    tokens_after: int | None = None

    @property
    def saved(self) -> int:
        """Tokens this transform removed (0 when not measured)."""
        if self.tokens_before is None or self.tokens_after is None:
            return 0
        return self.tokens_before - self.tokens_after

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"name": self.name, "tokens_before": self.tokens_before, "tokens_after": self.tokens_after}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TransformSaving:
        """Rebuild from `to_json` output."""
        return cls(str(data.get("name", "")), data.get("tokens_before"), data.get("tokens_after"))


@dataclass(frozen=True)
class RewriteSavings:
    """What the proxy's rewrites saved on one request (None: that rewrite did not run)."""

    transforms: tuple[TransformSaving, ...] = ()
    transform_saved_tokens: int | None = None
    mcp_saved_tokens: int | None = None
    compaction_saved_tokens: int | None = None
    compaction_folded: str | None = None


@dataclass(frozen=True)
class RequestRecord:
    """One row of the traffic journal (its columns are declared once, in COLUMNS below)."""

    id: int
    ts: float
    method: str
    path: str
    status: int
    session_id: str = ""
    kind: str = "other"  # main | title | subagent | count_tokens | other
    model: str = ""
    dialect: str = ""
    stream: bool = False
    ttfb_ms: float | None = None
    total_ms: float | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    body_truncated: bool = False
    has_body: bool = False
    anatomy: Anatomy | None = None
    usage: Usage = field(default_factory=Usage)
    cache_break: CacheBreak | None = None
    unparsed_reason: str | None = None
    error: str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)  # redacted
    response_headers: dict[str, str] = field(default_factory=dict)
    transforms: tuple[TransformSaving, ...] = ()
    transform_saved_tokens: int | None = None
    mcp_saved_tokens: int | None = None
    compaction_saved_tokens: int | None = None
    user: str = ""  # team mode: the user whose key sent it ("unknown": no configured user's key)
    # "in_flight": provisional row written when the request was forwarded (replaced by the final one);
    # "interrupted": the proxy stopped before the response ended; "done": the exchange is complete.
    state: str = "done"
    # The messages a proxy compaction folded out of this request, as the client's bytes held them; on the
    # compaction's later rows "@<id>": the row that holds them (the journal keeps them once).
    compaction_folded: str | None = None

    @property
    def in_flight(self) -> bool:
        """Whether this is the provisional row of a request still being answered."""
        return self.state == "in_flight"

    @property
    def prompt_tokens(self) -> int | None:
        """Server prompt tokens when known, else the anatomy total."""
        if self.usage.prompt_tokens is not None:
            return self.usage.prompt_tokens
        return self.anatomy.total_tokens if self.anatomy else None

    @property
    def reused_fraction(self) -> float | None:
        """Share of the prompt the server took from its cache."""
        prompt = self.usage.prompt_tokens
        if not prompt or self.usage.cached_tokens is None:
            return None
        return self.usage.cached_tokens / prompt

    def to_json(self) -> dict[str, Any]:
        """The `requests --json` contract."""
        return {c.json: c.to_plain(getattr(self, c.name)) for c in COLUMNS if c.json is not None}


FOLDED_REF = "@"  # compaction_folded pointing at the row that holds the text (JSON text never starts so)


def folded_ref(row_id: int) -> str:
    """The compaction_folded value of a row whose folded messages another row already holds."""
    return f"{FOLDED_REF}{row_id}"


def folded_ref_id(value: str | None) -> int | None:
    """The row a compaction_folded reference points at (None: the value is the text itself, or none)."""
    if value and value.startswith(FOLDED_REF) and value[1:].isdigit():
        return int(value[1:])
    return None


def _same(value: Any) -> Any:
    return value


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _headers(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


def _headers_text(headers: dict[str, str]) -> dict[str, str]:
    """Headers as storable text: bytes that were not UTF-8 (surrogate-escaped by aiohttp) become \\xNN."""
    return {_text(k): _text(v) for k, v in headers.items()}


def _text(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Column:
    """One field of RequestRecord: its SQL column, its JSON key and how its value becomes plain JSON."""

    name: str  # the RequestRecord field and the SQL column
    sql: str  # SQL type (NOT NULL and DEFAULT come from the field's default)
    json: str | None  # key in `requests --json`; None: only in the full form (demo recordings)
    to_plain: Callable[[Any], Any] = _same  # record value -> plain JSON value
    from_plain: Callable[[Any], Any] = _same  # plain JSON value (or SQL NULL) -> record value
    as_json_text: bool = False  # SQL stores the plain value as JSON text
    since: int = 1  # schema version that added it (older journals get ALTER TABLE ADD COLUMN)
    listed: bool = True  # read for listings; False: only when one row is loaded whole


COLUMNS: tuple[Column, ...] = (
    Column("id", "INTEGER", "id", from_plain=int),
    Column("ts", "REAL", "ts", from_plain=float),
    Column("method", "TEXT", "method", from_plain=str),
    Column("path", "TEXT", "path", from_plain=str),
    Column("status", "INTEGER", "status", from_plain=int),
    Column("session_id", "TEXT", "session", from_plain=str),
    Column("kind", "TEXT", "kind", from_plain=str),
    Column("model", "TEXT", "model", from_plain=str),
    Column("dialect", "TEXT", "dialect", from_plain=str),
    Column("stream", "INTEGER", "stream", from_plain=bool),
    Column("ttfb_ms", "REAL", "ttfb_ms", from_plain=_opt_float),
    Column("total_ms", "REAL", "total_ms", from_plain=_opt_float),
    Column("request_bytes", "INTEGER", "request_bytes", from_plain=int),
    Column("response_bytes", "INTEGER", "response_bytes", from_plain=int),
    Column("body_truncated", "INTEGER", None, from_plain=bool),
    Column("has_body", "INTEGER", None, from_plain=bool),
    Column(
        "anatomy", "TEXT", "anatomy",
        to_plain=lambda a: a.to_json() if a is not None else None,
        from_plain=lambda d: Anatomy.from_json(d) if d else None,
        as_json_text=True,
    ),
    Column(
        "usage", "TEXT", "usage",
        to_plain=lambda u: u.to_json(),
        from_plain=lambda d: Usage.from_json(d) if d else Usage(),
        as_json_text=True,
    ),
    Column(
        "cache_break", "TEXT", "cache_break",
        to_plain=lambda c: c.to_json() if c is not None else None,
        from_plain=lambda d: CacheBreak.from_json(d) if d else None,
        as_json_text=True,
    ),
    Column("unparsed_reason", "TEXT", "unparsed_reason", from_plain=_opt_str),
    Column("error", "TEXT", "error", from_plain=_opt_str),
    Column(
        "request_headers", "TEXT", None,
        to_plain=_headers_text, from_plain=_headers, as_json_text=True, listed=False,
    ),
    Column(
        "response_headers", "TEXT", None,
        to_plain=_headers_text, from_plain=_headers, as_json_text=True, listed=False,
    ),
    Column(
        "transforms", "TEXT", "transforms",
        to_plain=lambda ts: [t.to_json() for t in ts],
        from_plain=lambda d: tuple(TransformSaving.from_json(t) for t in d or ()),
        as_json_text=True,
        since=2,
    ),
    Column("transform_saved_tokens", "INTEGER", "transform_saved_tokens", from_plain=_opt_int, since=2),
    Column("mcp_saved_tokens", "INTEGER", "mcp_saved_tokens", from_plain=_opt_int, since=2),
    Column("compaction_saved_tokens", "INTEGER", "compaction_saved_tokens", from_plain=_opt_int, since=2),
    Column("user", "TEXT", "user", from_plain=str, since=3),
    Column("state", "TEXT", "state", from_plain=str, since=4),
    Column("compaction_folded", "TEXT", None, from_plain=_opt_str, since=5, listed=False),
)


def _field_defaults() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(RequestRecord):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


# What a field holds when nothing set it (SQL DEFAULTs and missing JSON keys come from here).
FIELD_DEFAULTS: dict[str, Any] = _field_defaults()


def record_to_plain(record: RequestRecord) -> dict[str, Any]:
    """Every column as plain JSON, keyed by JSON name (field name for columns outside the contract)."""
    return {c.json or c.name: c.to_plain(getattr(record, c.name)) for c in COLUMNS}


def record_from_plain(data: dict[str, Any]) -> RequestRecord:
    """Inverse of record_to_plain (also reads `requests --json`); missing keys take the field default."""
    values: dict[str, Any] = {}
    for c in COLUMNS:
        key = c.json or c.name
        if key in data:
            values[c.name] = c.from_plain(data[key])
        elif c.name in data:
            values[c.name] = c.from_plain(data[c.name])
        elif c.name not in FIELD_DEFAULTS:
            raise KeyError(f"request record without {key!r}")
    return RequestRecord(**values)
