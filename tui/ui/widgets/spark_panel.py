"""Sparklines over the last N requests: prompt t/s, generation t/s, prompt tokens, reuse %."""

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
)


class SparkPanel(Grid):
    """Four labelled sparklines in a 2×2 grid (narrow) or one row (wide)."""

    def compose(self) -> ComposeResult:
        """One cell per series."""
        for key, label in SERIES:
            with Horizontal(classes="spark-cell", id=f"spark-{key}"):
                yield Label(f"{label} –", classes="spark-label")
                yield Sparkline([], summary_function=max, classes="spark-line")

    def show(self, series: SparkSeries) -> None:
        """Update every sparkline and its latest value."""
        for key, label in SERIES:
            values: tuple[float, ...] = getattr(series, key)
            cell = self.query_one(f"#spark-{key}", Horizontal)
            cell.query_one(Sparkline).data = list(values)
            last = values[-1] if values else None
            if key == "reuse_pct":
                text = "–" if last is None else f"{last:.0f}%"
            elif key == "prompt_tokens":
                text = tokens(last)
            else:
                text = rate(last)
            cell.query_one(Label).update(f"{label} {text}")
