"""Usage reports over the traffic journal: pure aggregation plus table, Markdown, JSON and CSV output.

Names are loaded lazily so that importing the price settings (done by every config load) does not
pull in the journal reader and the renderers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.core.report.build import Report, build_report, load_records, parse_since
    from tui.core.report.prices import (
        DEFAULT_PRICES,
        CloudCost,
        PriceEntry,
        ReportSettings,
        report_settings_from_dict,
    )
    from tui.core.report.render import render_markdown, render_table
    from tui.core.report.render_data import render_csv, render_json
    from tui.core.report.stats import SIZE_LABELS, percentile, size_bucket, sparkline
    from tui.core.report.summary import Summary, is_model_request, summarize, summary_for

FORMATS = ("table", "md", "json", "csv")

_HOMES: dict[str, str] = {
    "Report": "build", "build_report": "build", "load_records": "build", "parse_since": "build",
    "DEFAULT_PRICES": "prices", "CloudCost": "prices", "PriceEntry": "prices", "ReportSettings": "prices",
    "report_settings_from_dict": "prices",
    "render_markdown": "render", "render_table": "render",
    "render_csv": "render_data", "render_json": "render_data",
    "SIZE_LABELS": "stats", "percentile": "stats", "size_bucket": "stats", "sparkline": "stats",
    "Summary": "summary", "is_model_request": "summary", "summarize": "summary", "summary_for": "summary",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


def render_report(report: Report, fmt: str) -> str:
    """The report in one of FORMATS."""
    from tui.core.report.render import render_markdown, render_table
    from tui.core.report.render_data import render_csv, render_json
    from tui.core.terminal_text import printable_lines

    renderers = {"table": render_table, "md": render_markdown, "json": render_json, "csv": render_csv}
    try:
        text = renderers[fmt](report)
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}") from None
    # Session ids and MCP server names come from request bodies: no terminal escapes get through
    # (JSON already writes controls as \\uNNNN escapes).
    return text if fmt == "json" else printable_lines(text)


__all__ = [
    "DEFAULT_PRICES",
    "FORMATS",
    "SIZE_LABELS",
    "CloudCost",
    "PriceEntry",
    "Report",
    "ReportSettings",
    "Summary",
    "build_report",
    "is_model_request",
    "load_records",
    "parse_since",
    "percentile",
    "render_report",
    "render_csv",
    "render_json",
    "render_markdown",
    "render_table",
    "report_settings_from_dict",
    "size_bucket",
    "sparkline",
    "summarize",
    "summary_for",
]
