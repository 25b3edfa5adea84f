"""Sparklines over the last N requests: prompt t/s, generation t/s, prompt tokens, reuse %, draft %."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal
from textual.widgets import Label, Sparkline

from tui.core.feed.views import SparkSeries
from tui.ui.format import rate, tokens

SERIES: tuple[tuple[str, str], ...] = (
    ("prompt_tps", "pp t/s"),
    ("gen_tps", "tg t/s"),
    ("prompt_tokens", "prompt"),
    ("reuse_pct", "reuse"),
    ("draft_pct", "draft acc"),
)
# Shown only once a request reports speculative decoding (a server with a draft model).
OPTIONAL = frozenset({"draft_pct"})


class SparkPanel(Grid):
    """Four labelled sparklines in a 2×2 grid (narrow) or one row (wide)."""

    def compose(self) -> ComposeResult:
        """One cell per series."""
        for key, label in SERIES:
            with Horizontal(classes="spark-cell", id=f"spark-{key}") as cell:
                cell.display = key not in OPTIONAL
                yield Label(f"{label} –", classes="spark-label")
                yield Sparkline([], summary_function=max, classes="spark-line")

    def show(self, series: SparkSeries) -> None:
        """Update every sparkline and its latest value."""
        for key, label in SERIES:
            values: tuple[float, ...] = getattr(series, key)
            cell = self.query_one(f"#spark-{key}", Horizontal)
            if key in OPTIONAL:
                cell.display = bool(values)
            cell.query_one(Sparkline).data = list(values)
            last = values[-1] if values else None
            if key in ("reuse_pct", "draft_pct"):
                text = "–" if last is None else f"{last:.0f}%"
            elif key == "prompt_tokens":
                text = tokens(last)
            else:
                text = rate(last)
            cell.query_one(Label).update(f"{label} {text}")
