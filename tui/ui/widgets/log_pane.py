"""The llama-server log: bounded, filterable by level and slot, following the end unless scrolled up."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from tui.core.feed.updates import LogLine
from tui.core.terminal_text import printable

LEVEL_ORDER = {"D": 0, "I": 1, None: 1, "W": 2, "E": 3}
LEVEL_NAMES = {
    "debug": "D",
    "info": "I",
    "warn": "W",
    "warning": "W",
    "error": "E",
    "d": "D",
    "i": "I",
    "w": "W",
    "e": "E",
}


def parse_log_filter(query: str) -> tuple[str | None, int | None, str]:
    """`level:warn slot:1 words` -> ("W", 1, "words"); unknown terms stay in the text part."""
    level: str | None = None
    slot: int | None = None
    words: list[str] = []
    for term in query.split():
        name, sep, value = term.partition(":")
        if sep and name.lower() == "level" and value.lower() in LEVEL_NAMES:
            level = LEVEL_NAMES[value.lower()]
        elif sep and name.lower() == "slot" and value.isdigit():
            slot = int(value)
        else:
            words.append(term)
    return level, slot, " ".join(words).lower()


class LogPane(RichLog):
    """RichLog with max_lines; keeps its own bounded copy of lines to re-filter."""

    COMPONENT_CLASSES = {"log-pane--warning", "log-pane--error", "log-pane--dim"}

    def __init__(self, *, max_lines: int = 2000, id: str | None = None) -> None:
        super().__init__(
            max_lines=max_lines, wrap=False, markup=False, highlight=False, auto_scroll=False, id=id
        )
        self.kept: deque[LogLine] = deque(maxlen=max_lines)
        self.follow = True
        # While the pane is hidden lines are only kept; RichLog.write renders eagerly, which costs CPU.
        self.active = False
        self._stale = False
        self.filter_text = ""
        self._filter: tuple[str | None, int | None, str] = (None, None, "")
        self.update_title()

    def _matches(self, line: LogLine) -> bool:
        level, slot, words = self._filter
        if level is not None and LEVEL_ORDER.get(line.level, 1) < LEVEL_ORDER[level]:
            return False
        if slot is not None and line.slot != slot:
            return False
        return not words or words in line.text.lower()

    def _styled(self, line: LogLine) -> Text:
        shown = printable(line.text)  # verbose server logs quote prompts: no terminal escapes
        if line.level == "E":
            return Text(shown, style=self.get_component_rich_style("log-pane--error", partial=True))
        if line.level == "W":
            return Text(shown, style=self.get_component_rich_style("log-pane--warning", partial=True))
        text = Text(shown)
        head = shown.find(" ", shown.find(" ") + 1)
        if line.level and head > 0:
            text.stylize(self.get_component_rich_style("log-pane--dim", partial=True), 0, head)
        return text

    @property
    def at_end(self) -> bool:
        """Whether the view shows the last line."""
        return self.scroll_offset.y >= self.max_scroll_y - 1

    def add_lines(self, lines: Iterable[LogLine]) -> None:
        """Append lines; scroll to the end only while following and not scrolled up."""
        if not self.active:
            self.kept.extend(lines)
            self._stale = True
            return
        keep_end = self.follow and (self.at_end or not self.size.height)
        lines = list(lines)
        self.kept.extend(lines)
        self._write(lines, keep_end)

    def replace_lines(self, lines: Iterable[LogLine]) -> None:
        """Drop every kept line, then show these (a log backlog sent again)."""
        self.kept.clear()
        self.clear()
        self.add_lines(lines)

    def set_query(self, query: str) -> None:
        """Re-filter the kept lines."""
        self.filter_text = query.strip()
        self._filter = parse_log_filter(self.filter_text)
        self.update_title()
        self.clear()
        self._write(self.kept, self.follow)

    def _write(self, lines: Iterable[LogLine], scroll_end: bool) -> None:
        shown = [line for line in lines if self._matches(line)]
        for n, line in enumerate(shown, 1):
            # Only the last write scrolls; RichLog replays writes made before its size was known, with
            # this flag, once it is known, so the end is reached after the lines are laid out.
            self.write(self._styled(line), scroll_end=scroll_end and n == len(shown))

    def set_active(self, active: bool) -> None:
        """The pane became visible (render what was kept meanwhile) or hidden."""
        self.active = active
        if active and self._stale:
            self._stale = False
            self.set_query(self.filter_text)

    def on_show(self) -> None:
        """Shown again (pane switched in): catch up with the end while following."""
        if self.follow:
            self.call_after_refresh(self.scroll_end, animate=False, immediate=True)

    def set_follow(self, follow: bool) -> None:
        """Follow on jumps to the end."""
        self._set_follow(follow)
        if follow:
            self.scroll_end(animate=False, immediate=False)

    def _set_follow(self, follow: bool) -> None:
        if follow != self.follow:
            self.follow = follow
            self.update_title()

    def update_title(self) -> None:
        """Border title: follow state and filter."""
        state = "following" if self.follow else "paused · f or End resumes"
        title = f"llama-server log · {state}"
        if self.filter_text:
            title += f" · filter: {self.filter_text}"
        self.border_title = title

    def watch_scroll_y(self, old: float, new: float) -> None:
        """Scrolling up pauses following; reaching the end resumes it."""
        super().watch_scroll_y(old, new)
        if new < old and not self.at_end:
            self._set_follow(False)
        elif self.at_end and new > old:
            self._set_follow(True)
