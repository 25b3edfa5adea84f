"""What the agent needs from a slot: its smallest request (from the journal) and the window it assumes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CLAUDE_DEFAULT_WINDOW = 200_000
# Claude Code 2.1.197's first request with two MCP servers, measured on the server (issue 13); used only
# until the journal holds a request of the user's own agent.
CLAUDE_TYPICAL_FIRST_REQUEST = 28_000
# Claude Code reads these; the smaller one bounds what it sends before compacting.
CLAUDE_WINDOW_ENV = ("CLAUDE_CODE_AUTO_COMPACT_WINDOW", "CLAUDE_CODE_MAX_CONTEXT_TOKENS")
JOURNAL_ROWS = 500


@dataclass(frozen=True)
class AgentNeed:
    """The agent's smallest request in tokens (None: unknown) and where that number comes from."""

    tokens: int | None
    source: str


def agent_window(
    client: str, configured: int, environ: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """The window the agent compacts within and its source: exported variables, [agent], or the default."""
    env = os.environ if environ is None else environ
    if client == "claude":
        exported = [(int(env[n]), n) for n in CLAUDE_WINDOW_ENV if env.get(n, "").strip().isdigit()]
        if exported:
            value, name = min(exported)
            return value, f"${name}"
    if configured > 0:
        return configured, "[agent] context_window"
    if client == "claude":
        return CLAUDE_DEFAULT_WINDOW, "Claude Code's default window"
    return 0, "unknown"


def agent_min_request(journal: Path | None, client: str) -> AgentNeed:
    """The smallest main request in the journal's latest rows; Claude Code's typical first request else."""
    sizes: list[int] = []
    if journal is not None and journal.exists():
        from tui.core.journal.reader import JournalReader

        reader = JournalReader(journal)
        try:
            rows = reader.latest(JOURNAL_ROWS)
        finally:
            reader.close()
        for row in rows:
            tokens = row.prompt_tokens
            if row.kind == "main" and tokens:
                sizes.append(tokens)
        if sizes:
            return AgentNeed(min(sizes), f"the smallest of {len(sizes)} main request(s) in the journal")
    if client == "claude":
        return AgentNeed(
            CLAUDE_TYPICAL_FIRST_REQUEST, "Claude Code's typical first request; none in the journal yet"
        )
    return AgentNeed(None, "no main request in the journal yet")
