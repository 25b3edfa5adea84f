"""Turns one Exchange into its anatomy, usage, session and cache-break explanation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tui.core.anatomy.body import BodyError, decode_bytes, guess_dialect, header, parse_json_object, route
from tui.core.anatomy.build import build_anatomy, piece_tokens
from tui.core.anatomy.cache_break import explain, signature
from tui.core.anatomy.exchange import Exchange
from tui.core.anatomy.model import Anatomy
from tui.core.anatomy.pieces import Split
from tui.core.anatomy.rendered import TemplateRenderer, rendered_parts
from tui.core.anatomy.response import parse_usage
from tui.core.anatomy.sessions import SessionTracker
from tui.core.anatomy.split_anthropic import split_anthropic
from tui.core.anatomy.split_openai import split_openai
from tui.core.records import CacheBreak, Usage
from tui.core.tokens import CounterError, TokenCounter, measure


@dataclass(frozen=True)
class AnalysisResult:
    """Everything the journal stores about one exchange besides the raw bytes."""

    session_id: str = ""
    kind: str = "other"  # main | title | compact | subagent | count_tokens | other
    model: str = ""
    dialect: str = ""  # "anthropic" | "openai" | ""
    stream: bool = False
    anatomy: Anatomy | None = None
    usage: Usage = field(default_factory=Usage)
    cache_break: CacheBreak | None = None
    unparsed_reason: str | None = None
    # The parsed request, for the rewrite accounting in the same worker (never journaled).
    body: dict[str, Any] | None = field(default=None, compare=False, repr=False)


def split_body(body: dict[str, Any], dialect: str, mcp_servers: tuple[str, ...]) -> Split:
    """Pieces of a request body in the given dialect ("anthropic" | "openai" | "auto")."""
    if dialect == "auto":
        dialect = guess_dialect(body)
    if dialect == "anthropic":
        return split_anthropic(body, mcp_servers)
    return split_openai(body, mcp_servers)


def anatomy_of(
    split: Split, counter: TokenCounter, server_prompt_tokens: int | None = None
) -> tuple[Anatomy, list[int]]:
    """Count every piece with one counter (one batch) and aggregate; raises CounterError."""
    texts = [p.text for p in split.pieces if p.fixed_tokens is None]
    counts = measure(counter, texts)
    tokens = piece_tokens(split.pieces, counts.values)
    return build_anatomy(split, tokens, counts.counter, counts.exact, server_prompt_tokens), tokens


class Analyzer:
    """Stateful (sessions, previous requests) analyzer; call analyze() from one thread only."""

    def __init__(
        self, counter: TokenCounter, mcp_servers: Sequence[str] = (), renderer: TemplateRenderer | None = None
    ) -> None:
        self.counter = counter
        self.mcp_servers = tuple(mcp_servers)
        self.sessions = SessionTracker()
        self.renderer = renderer  # counts as the server's template renders (with an exact counter)

    def analyze(self, exchange: Exchange) -> AnalysisResult:
        """Never raises: anything unexpected ends up in unparsed_reason."""
        usage = Usage()
        try:
            usage = self._usage(exchange)
            return self._analyze(exchange, usage)
        except Exception as exc:  # noqa: BLE001  (the proxy thread must survive any body)
            return AnalysisResult(usage=usage, unparsed_reason=f"analyzer error: {type(exc).__name__}: {exc}")

    def preview(self, exchange: Exchange) -> AnalysisResult:
        """The request half without counting (for the in-flight row): model, dialect, session, kind.

        Counting waits for the final row: the server is busy with this very prompt. Session kinds are
        assigned as analyze() will (identify gives the same answer for the same request twice).
        """
        target = route(exchange.method, exchange.path)
        if target is None:
            return AnalysisResult()
        try:
            raw = decode_bytes(exchange.request_body, exchange.request_headers)
            body = parse_json_object(raw, exchange.body_truncated)
            split = split_body(body, target.dialect, self.mcp_servers)
        except (BodyError, ValueError):
            return AnalysisResult(dialect=target.dialect)
        info = self.sessions.identify(exchange.request_headers, body, split, target.counting)
        return AnalysisResult(
            session_id=info.session_id,
            kind=info.kind,
            model=str(body.get("model", "")),
            dialect=target.dialect,
            stream=bool(body.get("stream", False)),
        )

    def _as_rendered(
        self,
        body: dict[str, Any],
        dialect: str,
        split: Split,
        tokens: list[int],
        anatomy: Anatomy,
        server_prompt_tokens: int | None,
    ) -> Anatomy:
        """The anatomy of what the model receives; the as-sent one when the server cannot render it."""
        assert self.renderer is not None
        try:
            rendered = self.renderer.render(body, dialect, split.pieces)
        except CounterError:
            return anatomy
        counts = [sent if got is None else got for sent, got in zip(tokens, rendered.tokens, strict=True)]
        total = server_prompt_tokens if server_prompt_tokens is not None else rendered.total
        as_rendered = build_anatomy(split, counts, anatomy.counter, anatomy.exact, total)
        parts = tuple(p for p in as_rendered.parts if p.category != "template_overhead")
        as_sent = {k: v for k, v in anatomy.categories.items() if k != "template_overhead"}
        return replace(
            as_rendered,
            parts=rendered_parts(parts, rendered, total),
            rendered=True,
            as_sent=as_sent,
            dropped=rendered.dropped,
        )

    def _usage(self, exchange: Exchange) -> Usage:
        if not exchange.response_body:
            return Usage()
        try:
            data = decode_bytes(exchange.response_body, exchange.response_headers)
        except BodyError:
            return Usage()
        return parse_usage(data, header(exchange.response_headers, "content-type"))

    def _analyze(self, exchange: Exchange, usage: Usage) -> AnalysisResult:
        target = route(exchange.method, exchange.path)
        if target is None:
            bare = exchange.path.split("?", 1)[0]
            return AnalysisResult(
                usage=usage, unparsed_reason=f"not a model request: {exchange.method} {bare}"
            )
        try:
            raw = decode_bytes(exchange.request_body, exchange.request_headers)
            body = parse_json_object(raw, exchange.body_truncated)
        except BodyError as exc:
            return AnalysisResult(dialect=target.dialect, usage=usage, unparsed_reason=str(exc))
        base = AnalysisResult(
            model=str(body.get("model", "")),
            dialect=target.dialect,
            stream=bool(body.get("stream", False)),
            usage=usage,
            body=body,
        )
        try:
            split = split_body(body, target.dialect, self.mcp_servers)
        except ValueError as exc:
            return _with(base, unparsed_reason=str(exc))
        info = self.sessions.identify(exchange.request_headers, body, split, target.counting)
        base = _with(base, session_id=info.session_id, kind=info.kind)
        try:
            # Also known from a 400 exceed_context_size_error (n_prompt_tokens) or a count_tokens reply.
            anatomy, tokens = anatomy_of(split, self.counter, usage.prompt_tokens)
        except CounterError as exc:
            return _with(base, unparsed_reason=f"token counter failed: {exc}")
        if self.renderer is not None and anatomy.exact:
            anatomy = self._as_rendered(body, target.dialect, split, tokens, anatomy, usage.prompt_tokens)
        cache_break = None
        if info.lane is not None and exchange.status < 400:
            sig = signature(split.pieces, tokens, split.message_count, usage.prompt_tokens)
            previous = self.sessions.previous(info.session_id, info.lane)
            if previous is not None:
                cache_break = explain(previous, sig, usage.cached_tokens)
            self.sessions.remember(info.session_id, info.lane, sig)
        return _with(base, anatomy=anatomy, cache_break=cache_break)


def _with(result: AnalysisResult, **changes: Any) -> AnalysisResult:
    return replace(result, **changes)
