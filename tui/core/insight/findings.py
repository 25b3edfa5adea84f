"""Findings from a session's journal rows alone: unused MCP servers, cache breaks, history, overflows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tui.core.anatomy.cache_break_server import SERVER_BREAK_OPENINGS
from tui.core.anatomy.model import MCP_HELPERS_SERVER
from tui.core.insight.model import Finding
from tui.core.records import RequestRecord

# Cache-break causes the stabilizer or a steady tool list can prevent; compaction breaks are the point.
AVOIDABLE_CAUSES = frozenset({"billing header", "system prompt", "tool list"})
HISTORY_CATEGORIES = ("history", "thinking", "tool_calls", "tool_results")
HISTORY_SHARE_MIN = 0.4


def _seconds(tokens: int, speed: float | None) -> float | None:
    return round(tokens / speed, 1) if speed else None


def _at_speed(tokens: int, speed: float | None) -> str:
    seconds = _seconds(tokens, speed)
    return f"{tokens:,} tokens" + (
        f" (~{seconds:,.1f} s at {speed:,.0f} tok/s)" if seconds is not None else ""
    )


def called_tools(records: Sequence[RequestRecord]) -> set[str]:
    """Tool names whose calls or results appear in any request of the session."""
    names: set[str] = set()
    for r in records:
        if r.anatomy is None:
            continue
        names.update(r.anatomy.tool_results_by_tool)
        names.update(
            p.tool for p in r.anatomy.parts if p.tool and p.category in ("tool_calls", "tool_results")
        )
    return names


def mcp_unused(records: Sequence[RequestRecord], speed: float | None) -> list[Finding]:
    """MCP servers whose tools ride on every request of the session but were never called."""
    carrying = [r for r in records if r.anatomy is not None and r.anatomy.mcp_servers and r.status < 400]
    if not carrying:
        return []
    latest = carrying[-1]
    assert latest.anatomy is not None
    called = called_tools(records)
    out = []
    for server, info in latest.anatomy.mcp_servers.items():
        names = {t.name for t in latest.anatomy.tools if t.server == server}
        if server == MCP_HELPERS_SERVER or not names or names & called:
            continue
        per_request = int(info.get("tokens", 0))
        requests = sum(1 for r in carrying if r.anatomy is not None and server in r.anatomy.mcp_servers)
        system = latest.anatomy.categories.get("system", 0)
        prompt = latest.prompt_tokens or latest.anatomy.total_tokens
        reprefill = max(0, prompt - per_request - system)
        out.append(
            Finding(
                kind="mcp_unused",
                title=f"MCP server {server}: {len(names)} tools never called, "
                f"{per_request:,} tokens on every request",
                lines=(
                    f"{requests} requests so far carried its {len(names)} tool schemas "
                    f"({per_request * requests:,} tokens in all)",
                    f"switching it off saves {per_request:,} tokens on every further request",
                    f"one-time cost: the next request re-processes up to {_at_speed(reprefill, speed)} "
                    "(everything after the system prompt)",
                ),
                apply=f"space on its row in the MCP panel, or `ctxbudget mcp off {server}`",
                tokens_saved=per_request * requests,
                seconds_saved=None,
                data={
                    "server": server,
                    "tools": len(names),
                    "tokens_per_request": per_request,
                    "requests": requests,
                    "saved_per_request": per_request,
                    "reprefill_tokens": reprefill,
                    "reprefill_seconds": _seconds(reprefill, speed),
                },
            )
        )
    return out


def break_cause(description: str) -> str:
    """The cause of a cache break from its explanation (see anatomy/cache_break*.py)."""
    if description.startswith(SERVER_BREAK_OPENINGS):
        return "server cache lost"
    if "billing header" in description or "cc_version" in description:
        return "billing header"
    if "truncated/compacted" in description:
        return "compaction"
    if description.startswith("tool") or "tools[" in description:
        return "tool list"
    if description.startswith("message"):
        return "message edited"
    return "system prompt"


def break_cost(record: RequestRecord) -> int:
    """Prompt tokens the server processed again because of the break."""
    prompt = record.prompt_tokens or 0
    if record.usage.cached_tokens is not None:
        return max(0, prompt - record.usage.cached_tokens)
    reusable = record.cache_break.reusable_prefix_tokens if record.cache_break else 0
    return max(0, prompt - reusable)


def cache_breaks(
    records: Sequence[RequestRecord], speed: float | None, prevention: Mapping[int, str]
) -> list[Finding]:
    """One finding per cause: how often, the prefill it cost, and how to prevent the avoidable ones."""
    by_cause: dict[str, list[RequestRecord]] = {}
    for r in records:
        if r.cache_break is not None and r.status < 400:
            by_cause.setdefault(break_cause(r.cache_break.description), []).append(r)
    out = []
    for cause, rows in by_cause.items():
        cost = sum(break_cost(r) for r in rows)
        avoidable = cause in AVOIDABLE_CAUSES
        lines = [f"{len(rows)} break{'s' if len(rows) != 1 else ''} cost {_at_speed(cost, speed)} of prefill"]
        fixes = []
        for r in rows:
            assert r.cache_break is not None
            fix = prevention.get(r.id, "")
            lines.append(
                f"request {r.id}: {r.cache_break.description}" + (f"; prevent with {fix}" if fix else "")
            )
            if fix:
                fixes.append(fix)
        server = cause == "server cache lost"
        if server:
            lines.append("the prompt did not change: the server dropped its cache (other session, restart)")
        elif not avoidable:
            lines.append("not avoidable: the conversation itself changed (compaction or an edit)")
        apply = "add the pattern named above to [transforms] in config.toml, then restart the proxy"
        if cause == "tool list":
            apply = "keep the tool list fixed during a session (switch MCP servers between sessions)"
        elif server:
            apply = "more slots (-np) than agents working at once, and llama-server's --cache-ram left on"
        elif not avoidable:
            apply = "nothing to do"
        out.append(
            Finding(
                kind="cache_breaks",
                title=f"Cache breaks: {cause} ({len(rows)}x, {cost:,} tokens re-processed)",
                lines=tuple(lines),
                apply=apply,
                tokens_saved=cost if avoidable else 0,
                seconds_saved=_seconds(cost, speed) if avoidable else None,
                data={
                    "cause": cause,
                    "count": len(rows),
                    "tokens": cost,
                    "seconds": _seconds(cost, speed),
                    "avoidable": avoidable,
                    "requests": [r.id for r in rows],
                    "prevention": fixes,
                },
            )
        )
    return out


def history_share(records: Sequence[RequestRecord], n_ctx: int | None) -> list[Finding]:
    """When the conversation history is most of the prompt: what a compaction would free."""
    rows = [r for r in records if r.anatomy is not None and r.kind == "main" and r.status < 400]
    if not rows:
        return []
    latest = rows[-1]
    assert latest.anatomy is not None
    total = latest.anatomy.total_tokens
    history = sum(latest.anatomy.categories.get(c, 0) for c in HISTORY_CATEGORIES)
    if not total or history / total < HISTORY_SHARE_MIN:
        return []
    room = f" of a {n_ctx:,}-token slot" if n_ctx else ""
    return [
        Finding(
            kind="history",
            title=f"History is {history / total:.0%} of the prompt ({history:,} of {total:,} tokens)",
            lines=(
                f"a compaction now frees up to {history:,} tokens{room}, less the summary it writes",
                "every later request then carries the summary instead of the whole history",
            ),
            apply="`c` in the dashboard, or `ctxbudget compact`",
            tokens_saved=history,
            data={
                "history_tokens": history,
                "prompt_tokens": total,
                "share": round(history / total, 3),
                "request": latest.id,
            },  # fmt: skip
        )
    ]


def is_overflow(record: RequestRecord) -> bool:
    """A 400 that carried n_prompt_tokens: llama-server's exceed_context_size_error."""
    return (
        record.status == 400 and record.usage.prompt_tokens is not None and record.usage.output_tokens is None
    )


def overflows(records: Sequence[RequestRecord], n_ctx: int | None) -> list[Finding]:
    """Requests the slot could not hold, and the fix."""
    rows = [r for r in records if is_overflow(r)]
    if not rows:
        return []
    worst = max(r.usage.prompt_tokens or 0 for r in rows)
    slot = f"the {n_ctx:,}-token slot" if n_ctx else "the slot"
    return [
        Finding(
            kind="overflow",
            title=f"{len(rows)} request{'s' if len(rows) != 1 else ''} overflowed {slot} "
            f"(exceed_context_size_error, largest {worst:,} tokens)",
            lines=(
                *(f"request {r.id}: {r.usage.prompt_tokens:,} prompt tokens, HTTP 400" for r in rows),
                "compact before the prompt reaches the slot: `c` / `ctxbudget compact`",
                'and give the agent the real window: eval "$(ctxbudget env)" '
                "sets CLAUDE_CODE_AUTO_COMPACT_WINDOW",
                f"or give each slot {worst:,}+ tokens: raise -c, or lower -np (-c is shared by the slots)",
            ),
            apply='`c` (compact), then eval "$(ctxbudget env)" for the agent',
            tokens_saved=worst,
            data={"requests": [r.id for r in rows], "largest_prompt": worst, "n_ctx": n_ctx},
        )
    ]


def prompt_speed(records: Sequence[RequestRecord]) -> float | None:
    """The median prompt speed the server reported in this session's timings (None without timings)."""
    speeds = sorted(r.usage.prompt_per_second for r in records if r.usage.prompt_per_second)
    return speeds[len(speeds) // 2] if speeds else None
