"""Human renderings of a Report: an aligned terminal table and Markdown with Unicode charts."""

from __future__ import annotations

import time
from collections.abc import Sequence

from tui.core.report.build import Report
from tui.core.report.prices import PriceEntry
from tui.core.report.stats import bar, sparkline
from tui.core.report.summary import Saving, Summary

BAR_WIDTH = 28


def num(value: float | None) -> str:
    """Integer with thousands separators, '-' for unknown."""
    return "-" if value is None else f"{round(value):,}"


def pct(value: float | None) -> str:
    """A ratio as a whole percentage, '-' for unknown."""
    return "-" if value is None else f"{value:.0%}"


def clock(ts: float | None) -> str:
    """Local time as YYYY-MM-DD HH:MM."""
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def money(value: float) -> str:
    """Two decimals, or four for amounts under a cent."""
    return f"{value:.4f}" if 0 < value < 0.01 else f"{value:,.2f}"


def _saving(label: str, saving: Saving) -> str:
    if not saving.recorded:
        return f"{label}: 0 (not recorded)"
    return f"{label}: {saving.tokens:,} tokens over {saving.recorded} requests"


def _energy(s: Summary) -> str:
    if not s.energy_requests:
        return "Energy: not recorded (no GPU power samples in the journal)"
    tpj = s.tokens_per_joule
    return (
        f"Energy: {s.energy_j:,.1f} J over {s.energy_requests} requests"
        f" · {'-' if tpj is None else f'{tpj:,.2f}'} tokens/J"
    )


def _failures(s: Summary) -> str:
    """How the failures split, and the requests still in flight (left out of every number)."""
    parts = []
    if s.rejected or s.cancelled:
        parts.append(f"{s.rejected} rejected by the server, {s.cancelled} cut off (no tokens counted)")
    if s.in_flight:
        parts.append(f"{s.in_flight} in flight, not counted yet")
    return (" · " + " · ".join(parts)) if parts else ""


def _speculative(s: Summary) -> list[str]:
    """Draft acceptance with its per-request trend, only when the server ran speculative decoding."""
    if not s.draft_requests:
        return []
    return [
        f"Speculative decoding: {pct(s.draft_acceptance)} of {s.draft_tokens:,} drafted tokens accepted"
        f" over {s.draft_requests:,} requests · per request {sparkline(s.draft_trend)}"
    ]


def headline(s: Summary) -> list[str]:
    """The overall numbers as short lines."""
    return [
        f"Requests: {s.requests:,} ({s.errors} failed, {s.other_requests} non-model requests not counted)"
        + _failures(s),
        f"Prompt tokens: {s.prompt_tokens:,} · cached {s.cached_tokens:,} (reuse {pct(s.reuse_rate)})"
        f" · new {s.new_tokens:,} · new per request {num(s.effective_per_request)}",
        f"Output tokens: {s.output_tokens:,}",
        f"Prompt length p50/p95/p99: {num(s.prompt_p50)} / {num(s.prompt_p95)} / {num(s.prompt_p99)}",
        _saving("Saved by transforms", s.transform_saved),
        _saving("Saved by MCP switches", s.mcp_saved),
        _energy(s),
        *_speculative(s),
    ]


def category_lines(s: Summary) -> list[str]:
    """One bar per non-empty category, then MCP servers."""
    total = sum(s.categories.values())
    top = max(s.categories.values(), default=0)
    lines = [
        f"{name:<18} {tokens:>12,} {tokens / total:>6.1%} {bar(tokens, top, BAR_WIDTH)}"
        for name, tokens in sorted(s.categories.items(), key=lambda kv: -kv[1])
        if tokens > 0 and total > 0
    ]
    for server, tokens in s.mcp_servers.items():
        share = tokens / total if total else 0.0
        lines.append(f"  mcp {server[:12]:<12} {tokens:>12,} {share:>6.1%} {bar(tokens, top, BAR_WIDTH)}")
    return lines or ["(no request anatomy recorded)"]


LATENCY_HEAD = ("prompt size", "requests", "ttfb p50", "ttfb p95", "total p50", "total p95")
SESSION_HEAD = (
    "session", "requests", "prompt", "cached", "reuse", "new/req", "p95 prompt", "output", "last",
    "prompt length trend",
)
USER_HEAD = (
    "user", "requests", "prompt", "cached", "reuse", "new/req", "p95 prompt", "output", "sessions", "last",
)
DAY_HEAD = ("day", "requests", "prompt", "cached", "reuse", "new/req", "p95 prompt", "output", "sessions")


def latency_rows(s: Summary) -> list[tuple[str, ...]]:
    """Rows for the latency-by-size table (only buckets with requests)."""
    return [
        (b.label, str(b.requests), num(b.ttfb_p50), num(b.ttfb_p95), num(b.total_p50), num(b.total_p95))
        for b in s.latency if b.requests
    ]


def _common(s: Summary) -> tuple[str, ...]:
    return (
        f"{s.requests:,}", num(s.prompt_tokens), num(s.cached_tokens), pct(s.reuse_rate),
        num(s.effective_per_request), num(s.prompt_p95), num(s.output_tokens),
    )


def session_rows(report: Report) -> list[tuple[str, ...]]:
    """Rows for the per-session table."""
    return [
        (s.session or "(none)", *_common(s), clock(s.last_ts), sparkline(s.prompt_trend))
        for s in report.sessions
    ]


def user_rows(report: Report) -> list[tuple[str, ...]]:
    """Rows for the per-user table (`report --by user`)."""
    return [
        (s.user or "(single user)", *_common(s), str(report.user_sessions.get(s.user or "", 0)),
         clock(s.last_ts))
        for s in report.users
    ]  # fmt: skip


def _grouped(report: Report) -> tuple[str, Sequence[str], list[tuple[str, ...]]]:
    """The per-session or per-user section: title, head and rows."""
    if report.by == "user":
        return "Per user", USER_HEAD, user_rows(report)
    return "Per session", SESSION_HEAD, session_rows(report)


def day_rows(report: Report) -> list[tuple[str, ...]]:
    """Rows for the per-day table."""
    counts: dict[str | None, int] = {}
    for sd in report.session_days:
        counts[sd.day] = counts.get(sd.day, 0) + 1
    return [(s.day or "-", *_common(s), str(counts.get(s.day, 0))) for s in report.days]


def cost_rows(s: Summary, prices: Sequence[PriceEntry]) -> list[tuple[str, ...]]:
    """Rows for the cloud-cost table; `*` marks entries matching a model name the client asked for."""
    asked = {
        match.name for model in s.models
        if (match := next((p for p in prices if p.matches(model)), None)) is not None
    }
    return [
        (c.name + (" *" if c.name in asked else ""), c.currency, money(c.input_cost), money(c.cached_cost),
         money(c.output_cost), money(c.total))
        for c in s.costs
    ]


COST_HEAD = ("price table", "currency", "new input", "cached input", "output", "total")


def aligned(head: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Columns padded to width: first left-aligned, the rest right-aligned."""
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(row: Sequence[str]) -> str:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in pairs]
        return (indent + "  ".join(cells)).rstrip()

    return [line(head), *(line(r) for r in rows)]


def _title(report: Report) -> str:
    scope = f"since {clock(report.since_ts)}" if report.since_ts is not None else "whole journal"
    if report.session_filter:
        scope += f", session {report.session_filter}"
    return f"ctxbudget report · {clock(report.generated_ts)} · {scope}"


def _price_line(report: Report) -> str:
    return (
        f"prices: {report.settings.prices_date} {report.settings.prices_note}; cache writes not priced;"
        " * = matches a model name the agent asked for"
    )


def _trends(report: Report) -> list[str]:
    if len(report.days) < 2:
        return []
    return [
        f"prompt tokens per day  {sparkline([d.prompt_tokens for d in report.days])}",
        f"requests per day       {sparkline([d.requests for d in report.days])}",
        f"reuse rate per day     {sparkline([d.reuse_rate or 0 for d in report.days])}",
    ]


def render_table(report: Report) -> str:
    """Plain-text report for a terminal."""
    s = report.overall
    out = [_title(report), ""]
    out += headline(s)
    out += ["", f"Context by category (summed over {s.anatomy_requests:,} requests with anatomy)"]
    out += ["  " + line for line in category_lines(s)]
    out += ["", "Latency by prompt size (ms)", *aligned(LATENCY_HEAD, latency_rows(s))]
    out += ["", "Same traffic on a cloud API", f"  {_price_line(report)}"]
    out += aligned(COST_HEAD, cost_rows(s, report.settings.prices))
    title, head, rows = _grouped(report)
    out += ["", title, *aligned(head, rows)]
    out += ["", "Per day", *aligned(DAY_HEAD, day_rows(report))]
    trends = _trends(report)
    if trends:
        out += ["", *("  " + t for t in trends)]
    return "\n".join(out) + "\n"


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    cells = [[str(c).replace("|", "\\|") for c in row] for row in rows]
    align = ["---"] + ["---:"] * (len(head) - 1)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return lines if rows else [*lines, "| " + " | ".join(["-"] * len(head)) + " |"]


def render_markdown(report: Report) -> str:
    """Markdown report; charts sit in code blocks so they stay aligned on a web page too."""
    s = report.overall
    out = [f"# {_title(report)}", ""]
    out += [f"- {line}" for line in headline(s)]
    out += ["", "## Context by category", ""]
    out += [f"Summed over {s.anatomy_requests:,} requests with anatomy.", ""]
    out += ["```text", *category_lines(s), "```"]
    trends = _trends(report)
    if trends:
        out += ["", "## Trend", "", "```text", *trends, "```"]
    out += ["", "## Latency by prompt size (ms)", "", *md_table(LATENCY_HEAD, latency_rows(s))]
    out += ["", "## Same traffic on a cloud API", ""]
    out += [f"_{_price_line(report)}._", ""]
    out += md_table(COST_HEAD, cost_rows(s, report.settings.prices))
    title, head, rows = _grouped(report)
    out += ["", f"## {title}", "", *md_table(head, rows)]
    out += ["", "## Per day", "", *md_table(DAY_HEAD, day_rows(report))]
    return "\n".join(out) + "\n"


def summary_view(title: str, s: Summary, prices: Sequence[PriceEntry], prices_label: str) -> list[str]:
    """One summary as the lines of the dashboard's report view (session or day)."""
    out = [title, *("  " + line for line in headline(s))]
    out += ["", f"  Context by category ({s.anatomy_requests:,} requests with anatomy)"]
    out += ["    " + line for line in category_lines(s)]
    rows = latency_rows(s)
    if rows:
        out += ["", "  Latency by prompt size (ms)", *aligned(LATENCY_HEAD, rows, "    ")]
    out += ["", f"  Same traffic on a cloud API ({prices_label})"]
    out += aligned(COST_HEAD, cost_rows(s, prices), "    ")
    return out
