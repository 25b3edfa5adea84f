"""Machine renderings of a Report: JSON and CSV (one row per session-day)."""

from __future__ import annotations

import csv
import io

import orjson

from tui.core.anatomy.model import CATEGORIES
from tui.core.report.build import Report
from tui.core.report.stats import SIZE_LABELS
from tui.core.report.summary import Summary


def render_json(report: Report) -> str:
    """Indented JSON of Report.to_json()."""
    return orjson.dumps(report.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"


def _blank(value: float | None, digits: int = 1) -> str | float:
    return "" if value is None else round(value, digits)


def csv_header(report: Report) -> list[str]:
    """Column names of the CSV."""
    head = [
        "session", "day", "requests", "errors", "prompt_tokens", "cached_tokens", "new_tokens",
        "output_tokens", "reuse_rate", "effective_tokens_per_request",
        "prompt_p50", "prompt_p95", "prompt_p99",
    ]
    head += [f"cat_{name}" for name in CATEGORIES]
    head += ["mcp_tokens", "mcp_servers"]
    for label in SIZE_LABELS:
        head += [f"ttfb_p50_ms_{label}", f"total_p50_ms_{label}", f"total_p95_ms_{label}"]
    head += ["transform_saved_tokens", "mcp_saved_tokens", "energy_j", "tokens_per_joule"]
    head += [f"cost_{p.name}" for p in report.settings.prices]
    return head


def csv_row(s: Summary) -> list[str | float]:
    """One CSV row; unrecorded savings and energy are left blank."""
    row: list[str | float] = [
        s.session or "", s.day or "", s.requests, s.errors, s.prompt_tokens, s.cached_tokens, s.new_tokens,
        s.output_tokens, _blank(s.reuse_rate, 4), _blank(s.effective_per_request),
        _blank(s.prompt_p50, 0), _blank(s.prompt_p95, 0), _blank(s.prompt_p99, 0),
    ]
    row += [s.categories.get(name, 0) for name in CATEGORIES]
    row += [sum(s.mcp_servers.values()), ";".join(f"{k}={v}" for k, v in s.mcp_servers.items())]
    for bucket in s.latency:
        row += [_blank(bucket.ttfb_p50), _blank(bucket.total_p50), _blank(bucket.total_p95)]
    row += [
        s.transform_saved.tokens if s.transform_saved.recorded else "",
        s.mcp_saved.tokens if s.mcp_saved.recorded else "",
        round(s.energy_j, 3) if s.energy_requests else "",
        _blank(s.tokens_per_joule, 3),
    ]
    row += [round(c.total, 6) for c in s.costs]
    return row


def render_csv(report: Report) -> str:
    """CSV with one row per session-day (`--by user`: one row per user, first column `user`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    head = csv_header(report)
    if report.by == "user":
        writer.writerow(["user", *head[1:]])
        for summary in report.users:
            writer.writerow([summary.user or "", *csv_row(summary)[1:]])
        return buffer.getvalue()
    writer.writerow(head)
    for summary in report.session_days:
        writer.writerow(csv_row(summary))
    return buffer.getvalue()
