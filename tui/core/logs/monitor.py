"""One object the dashboard feeds log lines into and reads a frozen snapshot from."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from tui.core.logs import events as ev
from tui.core.logs.facts import FactsTracker, ServerFacts
from tui.core.logs.parse import LogParser
from tui.core.logs.slots import SlotState, SlotTracker
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

    @property
    def generation(self) -> int:
        """Changes whenever anything the snapshot shows changed."""
        return (
            self.timeline.generation
            + self.slot_tracker.generation
            + self.facts_tracker.generation
            + self.lines_seen
        )

    def feed_lines(self, lines: Iterable[str | bytes]) -> list[ev.LogEvent]:
        """Parse and fold lines; returns the events they produced."""
        events = self.parser.parse_lines(lines)
        self.feed_events(events)
        self.lines_seen += len(events)
        return events

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
        )
