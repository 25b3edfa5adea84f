"""How many more turns fit: from the tokens each turn adds, until the slot is full or the agent compacts."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.core.records import RequestRecord

# Claude Code compacts at window - min(max output, 20,000) - 13,000 (its AUTOCOMPACT_BUFFER_TOKENS and
# the reserve for the summary); the window is CLAUDE_CODE_AUTO_COMPACT_WINDOW, which `ctxbudget env`
# sets to the server's per-slot n_ctx.
CLAUDE_SUMMARY_RESERVE = 20_000
CLAUDE_AUTOCOMPACT_BUFFER = 13_000
# Growth is the mean over the newest turns since the context last shrank (a compaction or /clear).
GROWTH_WINDOW = 8


def claude_compact_threshold(window: int, max_output: int = CLAUDE_SUMMARY_RESERVE) -> int | None:
    """The prompt size at which Claude Code auto-compacts for this window (None when it never can)."""
    threshold = window - min(max_output, CLAUDE_SUMMARY_RESERVE) - CLAUDE_AUTOCOMPACT_BUFFER
    return threshold if threshold > 0 else None


@dataclass(frozen=True)
class Forecast:
    """Turns left before the slot is full (and before auto-compact, for Claude Code)."""

    prompt_tokens: int | None = None
    per_turn: int | None = None
    turns_seen: int = 0
    n_ctx: int | None = None
    turns_to_full: int | None = None
    compact_at: int | None = None
    turns_to_compact: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The `forecast` object of `requests --json`."""
        return dict(self.__dict__)

    def short(self) -> str:
        """Compact form for the status line and budget bar: "~6 turns to full, ~4 to auto-compact"."""
        out = []
        if self.turns_to_full is not None:
            out.append(f"~{self.turns_to_full} {_turns(self.turns_to_full)} to full")
        if self.turns_to_compact is not None:
            out.append(f"~{self.turns_to_compact} to auto-compact")
        return ", ".join(out)

    def phrases(self) -> list[str]:
        """Short phrases for the budget bar and the status line ("~6 turns until the slot is full")."""
        out: list[str] = []
        if self.turns_to_full is not None:
            out.append(f"~{self.turns_to_full} {_turns(self.turns_to_full)} until the slot is full")
        if self.turns_to_compact is not None:
            out.append(f"~{self.turns_to_compact} {_turns(self.turns_to_compact)} until auto-compact")
        return out


def _turns(n: int) -> str:
    return "turn" if n == 1 else "turns"


def _turns_left(limit: int | None, current: int, per_turn: int | None) -> int | None:
    if limit is None or per_turn is None or per_turn <= 0:
        return None
    return max(0, math.ceil((limit - current) / per_turn))


def forecast(prompts: Sequence[int], n_ctx: int | None, compact_at: int | None = None) -> Forecast:
    """Forecast from one conversation's prompt sizes in order (successful main turns only)."""
    if not prompts:
        return Forecast(n_ctx=n_ctx, compact_at=compact_at)
    current = prompts[-1]
    start = 0
    for i in range(1, len(prompts)):
        if prompts[i] < prompts[i - 1]:
            start = i  # the context shrank: growth before that no longer predicts
    growth = [b - a for a, b in zip(prompts[start:], prompts[start + 1 :], strict=False)][-GROWTH_WINDOW:]
    per_turn = round(sum(growth) / len(growth)) if growth else None
    return Forecast(
        prompt_tokens=current,
        per_turn=per_turn,
        turns_seen=len(growth),
        n_ctx=n_ctx,
        turns_to_full=_turns_left(n_ctx, current, per_turn),
        compact_at=compact_at,
        turns_to_compact=_turns_left(compact_at, current, per_turn),
    )


def main_prompts(records: Iterable[RequestRecord]) -> list[int]:
    """Prompt sizes of a session's main conversation (its sub-agent's when it has no main turn)."""
    rows = [r for r in records if r.status < 400 and r.prompt_tokens is not None]
    for kind in ("main", "subagent"):
        sizes = [r.prompt_tokens for r in rows if r.kind == kind and r.prompt_tokens is not None]
        if sizes:
            return sizes
    return []


def session_forecast(
    records: Sequence[RequestRecord], n_ctx: int | None, compact_window: int | None = None
) -> Forecast:
    """Forecast for the session of the newest record (compact_window: Claude Code's, None otherwise)."""
    if not records:
        return Forecast(n_ctx=n_ctx)
    session = records[-1].session_id
    same = [r for r in records if r.session_id == session]
    compact_at = None
    if compact_window and any(r.dialect == "anthropic" for r in same):
        compact_at = claude_compact_threshold(compact_window)
    return forecast(main_prompts(same), n_ctx, compact_at)


def forecasts_by_row(
    records: Sequence[RequestRecord], n_ctx: int | None, compact_window: int | None = None
) -> dict[int, Forecast]:
    """Each row's forecast from the rows of its session up to it (for `requests --json`)."""
    out: dict[int, Forecast] = {}
    seen: dict[str, list[RequestRecord]] = {}
    for record in records:
        rows = seen.setdefault(record.session_id, [])
        rows.append(record)
        out[record.id] = session_forecast(rows, n_ctx, compact_window)
    return out


def agent_window(n_ctx: int | None, configured: int = 0) -> int | None:
    """The window Claude Code compacts against: its environment's, else what `ctxbudget env` gives it."""
    from tui.core.insight.window import env_window

    return env_window() or n_ctx or (configured or None)


def budget_phrase(records: Sequence[RequestRecord], record: RequestRecord, n_ctx: int | None) -> str:
    """The budget bar's forecast for a request: its session's turns up to it, "" when nothing to say."""
    same = [r for r in records if r.session_id == record.session_id and r.id <= record.id]
    same.sort(key=lambda r: r.id)
    return session_forecast(same, n_ctx, agent_window(n_ctx)).short()
