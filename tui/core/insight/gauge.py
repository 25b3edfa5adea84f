"""The agent's own context gauge: the newest journal row of a session, read with plain sqlite3 (fast)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from tui.core.insight.forecast import Forecast, claude_compact_threshold, forecast

# Rows read back for the forecast's growth (the newest turns are enough).
HISTORY_ROWS = 64


@dataclass(frozen=True)
class Gauge:
    """What the status line shows for one session."""

    prompt_tokens: int | None
    n_ctx: int | None
    reused: float | None
    mcp_share: float | None
    forecast: Forecast


def _usage_prompt(usage: dict[str, object]) -> int | None:
    value = usage.get("prompt_tokens")
    return value if isinstance(value, int) else None


def read_gauge(path: Path, session_id: str, n_ctx: int | None, compact_window: int | None) -> Gauge | None:
    """The gauge from the session's newest rows (None: no model request of that session yet)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2)
    try:
        rows = conn.execute(
            "SELECT id, kind, usage, anatomy FROM requests WHERE session_id = ? AND status < 400 "
            "AND kind IN ('main', 'subagent') ORDER BY id DESC LIMIT ?",
            (session_id, HISTORY_ROWS),
        ).fetchall()
    finally:
        conn.close()
    kind = "main" if any(r[1] == "main" for r in rows) else "subagent"
    rows = [r for r in reversed(rows) if r[1] == kind]
    if not rows:
        return None
    usages = [json.loads(r[2]) if r[2] else {} for r in rows]
    newest_anatomy = json.loads(rows[-1][3]) if rows[-1][3] else {}
    categories = newest_anatomy.get("categories", {}) if isinstance(newest_anatomy, dict) else {}
    total = sum(v for v in categories.values() if isinstance(v, int))
    prompts = [p for p in (_usage_prompt(u) for u in usages) if p is not None]
    prompt = _usage_prompt(usages[-1]) or (total or None)
    cached = usages[-1].get("cached_tokens")
    reused = cached / prompt if isinstance(cached, int) and prompt else None
    mcp = categories.get("mcp_tools")
    compact_at = claude_compact_threshold(compact_window) if compact_window else None
    return Gauge(
        prompt_tokens=prompt,
        n_ctx=n_ctx,
        reused=reused,
        mcp_share=mcp / total if isinstance(mcp, int) and total else None,
        forecast=forecast(prompts, n_ctx, compact_at),
    )


def _short(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 10_000 else f"{n:,}"


def render(gauge: Gauge) -> str:
    """One short line: real prompt tokens / per-slot n_ctx, percent, reuse, MCP share, forecast."""
    prompt = "?" if gauge.prompt_tokens is None else _short(gauge.prompt_tokens)
    parts = [f"ctx {prompt}/{_short(gauge.n_ctx) if gauge.n_ctx else '?'}"]
    if gauge.prompt_tokens is not None and gauge.n_ctx:
        parts[0] += f" {gauge.prompt_tokens / gauge.n_ctx:.0%}"
    if gauge.reused is not None:
        parts.append(f"reuse {gauge.reused:.0%}")
    if gauge.mcp_share is not None and gauge.mcp_share > 0:
        parts.append(f"MCP {gauge.mcp_share:.0%}")
    if gauge.forecast.short():
        parts.append(gauge.forecast.short())
    return " | ".join(parts)
