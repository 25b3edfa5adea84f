"""The journal row: one forwarded request with its anatomy, accounting and cache-break info."""

from __future__ import annotations

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


@dataclass(frozen=True)
class RequestRecord:
    """One row of the traffic journal."""

    id: int
    ts: float
    method: str
    path: str
    status: int
    session_id: str = ""
    kind: str = "main"  # main | title | subagent | count_tokens | other
    model: str = ""
    dialect: str = ""
    stream: bool = False
    ttfb_ms: float | None = None
    total_ms: float | None = None
    request_bytes: int = 0
    response_bytes: int = 0
    anatomy: Anatomy | None = None
    usage: Usage = field(default_factory=Usage)
    cache_break: CacheBreak | None = None
    unparsed_reason: str | None = None
    error: str | None = None
    has_body: bool = False
    transforms: tuple[TransformSaving, ...] = ()
    transform_saved_tokens: int | None = None
    mcp_saved_tokens: int | None = None
    compaction_saved_tokens: int | None = None

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
        return {
            "id": self.id,
            "ts": self.ts,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "session": self.session_id,
            "kind": self.kind,
            "model": self.model,
            "dialect": self.dialect,
            "stream": self.stream,
            "ttfb_ms": self.ttfb_ms,
            "total_ms": self.total_ms,
            "request_bytes": self.request_bytes,
            "response_bytes": self.response_bytes,
            "anatomy": self.anatomy.to_json() if self.anatomy else None,
            "usage": self.usage.to_json(),
            "cache_break": self.cache_break.to_json() if self.cache_break else None,
            "unparsed_reason": self.unparsed_reason,
            "error": self.error,
            "transforms": [t.to_json() for t in self.transforms],
            "transform_saved_tokens": self.transform_saved_tokens,
            "mcp_saved_tokens": self.mcp_saved_tokens,
            "compaction_saved_tokens": self.compaction_saved_tokens,
        }
