"""Turns one Exchange into its anatomy, usage, session and cache-break explanation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tui.core.anatomy.exchange import Exchange
from tui.core.anatomy.model import Anatomy
from tui.core.records import CacheBreak, Usage
from tui.core.tokens import TokenCounter


@dataclass(frozen=True)
class AnalysisResult:
    """Everything the journal stores about one exchange besides the raw bytes."""

    session_id: str = ""
    kind: str = "other"  # main | title | subagent | count_tokens | other
    model: str = ""
    dialect: str = ""  # "anthropic" | "openai" | ""
    stream: bool = False
    anatomy: Anatomy | None = None
    usage: Usage = field(default_factory=Usage)
    cache_break: CacheBreak | None = None
    unparsed_reason: str | None = None


class Analyzer:
    """Stateful (sessions, cache) analyzer; call analyze() from one thread only."""

    def __init__(self, counter: TokenCounter, mcp_servers: Sequence[str] = ()) -> None:
        self.counter = counter
        self.mcp_servers = tuple(mcp_servers)

    def analyze(self, exchange: Exchange) -> AnalysisResult:
        """Never raises: anything unexpected ends up in unparsed_reason."""
        return AnalysisResult(unparsed_reason="analyzer not implemented yet")
