"""The context budget of one request: a stacked bar by category against the slot window, and a legend."""

from __future__ import annotations

import datetime as dt

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tui.core.feed.views import CATEGORY_LABELS, Budget
from tui.core.records import RequestRecord
from tui.ui.format import clock, flow, grouped, percent, tokens

STYLE_KEYS = tuple(CATEGORY_LABELS)


class BudgetBar(Widget):
    """Title line, one bar line and a wrapped legend; classes -warning / -danger near the window."""

    COMPONENT_CLASSES = {f"budget--{key}" for key in STYLE_KEYS} | {
        "budget--dim",
        "budget--warning",
        "budget--danger",
    }

    DEFAULT_CSS = """
    BudgetBar { height: auto; }
    """

    def __init__(self, *, tz: dt.tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tz = tz
        self.budget: Budget | None = None
        self.record: RequestRecord | None = None
        self.following = True
        self.empty_hint = "no requests yet"
        self.forecast = ""
        self.flight = ""  # what the server does with the shown request while it is in flight
        self.banner = ""  # a red line above the title: the model does not see part of this request
        self._shown_key: object = None

    def show(
        self, record: RequestRecord | None, budget: Budget | None, following: bool, forecast: str = ""
    ) -> None:
        """Show the budget of `record` (None: the empty state) and its session's forecast."""
        key = (record, budget, following, self.empty_hint, forecast, self.flight, self.banner)
        self.forecast = forecast
        if key == self._shown_key:
            return
        self._shown_key = key
        self.record = record
        self.budget = budget
        self.following = following
        level = budget.level if budget else "ok"
        self.set_class(level == "warning", "-warning")
        self.set_class(level == "danger", "-danger")
        self.refresh(layout=True)

    def _style(self, key: str) -> Style:
        return self.get_component_rich_style(f"budget--{key}", partial=True)

    def render(self) -> Text:
        """Title, bar, legend."""
        width = max(20, self.size.width)
        dim = self._style("dim")
        record, budget = self.record, self.budget
        if record is None:
            return Text(self.empty_hint, style=dim)
        title = Text()
        title.append(f"#{record.id} ", style="bold")
        title.append(f"{record.kind} {clock(record.ts, self.tz)}", style=dim)
        title.append("  " if self.following else "  (selected) ", style=dim)
        if budget is None:
            reason = self.flight or record.unparsed_reason or record.error or "no anatomy for this request"
            if record.in_flight and not self.flight:
                reason = "in flight: forwarded, waiting for the server's answer"
            title.append(f"  {reason}", style=dim)
            return title
        level_style = self._style(budget.level) if budget.level != "ok" else Style(bold=True)
        if budget.window:
            title.append(f"{grouped(budget.used)} / {grouped(budget.window)}", style=level_style)
            title.append(f" {percent(budget.fraction)}", style=level_style)
        else:
            title.append(f"{grouped(budget.used)} tokens", style=level_style)
            title.append(" (window unknown)", style=dim)
        for forecast in (self.forecast, self.forecast.split(", ")[0]):  # the whole, else the slot part
            if forecast and title.cell_len + 2 + len(forecast) <= width:
                title.append(f"  {forecast}", style=dim)
                break
        bar = self._bar(budget, width)
        legend = flow(
            [self._legend_entry(seg.label, seg.tokens, seg.style_key, budget) for seg in budget.segments],
            width,
        )
        lines = [title, bar, legend]
        if self.banner:
            lines.insert(0, Text(self.banner, style=self._style("danger") + Style(bold=True)))
        return Text("\n").join(lines)

    def _bar(self, budget: Budget, width: int) -> Text:
        total = max(budget.window, budget.used, 1)
        bar = Text()
        cells_used = 0
        segments = [s for s in budget.segments if s.tokens > 0]
        for index, seg in enumerate(segments):
            if seg.key == "free":
                cells = width - cells_used
                bar.append("░" * max(0, cells), style=self._style("free"))
                cells_used = width
                break
            share = round(seg.tokens / total * width)
            if share == 0:
                share = 1
            remaining_segments = len(segments) - index - 1
            share = max(0, min(share, width - cells_used - (0 if remaining_segments == 0 else 0)))
            bar.append("█" * share, style=self._style(seg.style_key))
            cells_used += share
        if cells_used < width:
            bar.append("░" * (width - cells_used), style=self._style("free"))
        return bar

    def _legend_entry(self, label: str, count: int, style_key: str, budget: Budget) -> Text:
        total = budget.window or budget.used or 1
        entry = Text()
        entry.append("■ " if style_key != "free" else "□ ", style=self._style(style_key))
        entry.append(label)
        entry.append(f" {tokens(count)} {percent(count / total)}", style=self._style("dim"))
        return entry
