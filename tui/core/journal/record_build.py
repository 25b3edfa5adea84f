"""The one place a RequestRecord is built from an exchange, its analysis and the rewrite savings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.core.journal.outcome import outcome_error
from tui.core.records import RequestRecord, RewriteSavings

if TYPE_CHECKING:  # readers must not import the analyzer (its counters pull in httpx)
    from tui.core.anatomy.analyze import AnalysisResult
    from tui.core.anatomy.exchange import Exchange


def build_record(
    exchange: Exchange,
    result: AnalysisResult,
    *,
    request_bytes: int,
    response_bytes: int,
    has_body: bool,
    savings: RewriteSavings | None = None,
    row_id: int = 0,
    user: str = "",
    state: str = "done",
) -> RequestRecord:
    """The journal row for one analysed exchange (id 0 until the journal assigns one)."""
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
        body_truncated=exchange.body_truncated,
        has_body=has_body,
        anatomy=result.anatomy,
        usage=result.usage,
        cache_break=result.cache_break,
        unparsed_reason=result.unparsed_reason,
        error=outcome_error(exchange, state),
        request_headers=exchange.request_headers,
        response_headers=exchange.response_headers,
        transforms=saved.transforms,
        transform_saved_tokens=saved.transform_saved_tokens,
        mcp_saved_tokens=saved.mcp_saved_tokens,
        compaction_saved_tokens=saved.compaction_saved_tokens,
        user=user,
        state=state,
        compaction_folded=saved.compaction_folded,
    )
