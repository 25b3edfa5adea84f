"""One object the dashboard feeds log lines into and reads a frozen snapshot from."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from tui.core.logs import events as ev
from tui.core.logs.facts import FactsTracker
from tui.core.logs.parse import LogParser
from tui.core.logs.slots import SlotTracker
from tui.core.logs.state import ServerFacts, SlotState
from tui.core.logs.timeline import DEFAULT_MAX_REQUESTS, RequestTimeline, Timeline

DEFAULT_MAX_EVENTS = 2000


@dataclass(frozen=True)
class LogSnapshot:
    """State derived from the log at one moment (``taken`` is epoch seconds)."""

    taken: float
    facts: ServerFacts
    slots: tuple[SlotState, ...]
    requests: tuple[RequestTimeline, ...]
    recent_events: tuple[ev.LogEvent, ...]
    lines_seen: int
    generation: int
    clock_offset: float | None = None

    def wall_time(self, ts: float | None) -> float | None:
        """Epoch seconds for a log timestamp (estimated while following a live log), or None."""
        if ts is None or self.clock_offset is None:
            return None
        return self.clock_offset + ts


class LogMonitor:
    """Parser + request timeline + live slot state + server facts, fed with lines in log order."""

    def __init__(
        self, max_requests: int = DEFAULT_MAX_REQUESTS, max_events: int = DEFAULT_MAX_EVENTS
    ) -> None:
        self.parser = LogParser()
        self.timeline = Timeline(max_requests)
        self.slot_tracker = SlotTracker()
        self.facts_tracker = FactsTracker()
        self._events: deque[ev.LogEvent] = deque(maxlen=max(1, max_events))
        self.lines_seen = 0
        self.clock_offset: float | None = None
        self._last_ts: float | None = None

    @property
    def generation(self) -> int:
        """Changes whenever anything the snapshot shows changed."""
        return (
            self.timeline.generation
            + self.slot_tracker.generation
            + self.facts_tracker.generation
            + self.lines_seen
        )

    def feed_lines(self, lines: Iterable[str | bytes], arrived: float | None = None) -> list[ev.LogEvent]:
        """Parse and fold lines that arrived at ``arrived`` (epoch s, default now); returns their events."""
        events = self.parser.parse_lines(lines)
        self.feed_events(events)
        self.lines_seen += len(events)
        self._anchor_clock(events, time.time() if arrived is None else arrived)
        return events

    def wall_time(self, ts: float | None) -> float | None:
        """Epoch seconds for a log timestamp (log timestamps count from the server's start), or None."""
        if ts is None or self.clock_offset is None:
            return None
        return self.clock_offset + ts

    def _anchor_clock(self, events: list[ev.LogEvent], arrived: float) -> None:
        # A line can only arrive after it was written, so arrival - ts over-estimates the server's start
        # time; the smallest value seen (the freshest line) is the best estimate. Timestamps going
        # backwards mean a new server process: start over.
        last = next((e.ts for e in reversed(events) if e.ts is not None), None)
        if last is None:
            return
        if self._last_ts is not None and last < self._last_ts - 1.0:
            self.clock_offset = None
        self._last_ts = last
        candidate = arrived - last
        if self.clock_offset is None or candidate < self.clock_offset:
            self.clock_offset = candidate

    def feed_events(self, events: list[ev.LogEvent]) -> None:
        """Fold already-parsed events."""
        self.timeline.feed_many(events)
        self.slot_tracker.feed_many(events)
        self.facts_tracker.feed_many(events)
        self._events.extend(events)

    def snapshot(self, last_requests: int | None = 100, last_events: int | None = 200) -> LogSnapshot:
        """A frozen view for rendering."""
        events = tuple(self._events)
        if last_events is not None:
            events = events[-last_events:] if last_events > 0 else ()
        return LogSnapshot(
            taken=time.time(),
            facts=self.facts_tracker.facts,
            slots=self.slot_tracker.slots(),
            requests=self.timeline.requests(last_requests),
            recent_events=events,
            lines_seen=self.lines_seen,
            generation=self.generation,
            clock_offset=self.clock_offset,
        )
