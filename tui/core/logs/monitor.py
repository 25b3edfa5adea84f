"""One object the dashboard feeds log lines into and reads a frozen snapshot from."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tui.core.logs import events as ev
from tui.core.logs.facts import FactsTracker
from tui.core.logs.parse import LogParser, strip_ansi
from tui.core.logs.router_split import RouterPorts, port_from_args, split_child
from tui.core.logs.slots import SlotTracker
from tui.core.logs.state import ServerFacts, SlotState
from tui.core.logs.timeline import DEFAULT_MAX_REQUESTS, RequestTimeline, Timeline

DEFAULT_MAX_EVENTS = 2000
MAX_CHILDREN = 16  # router mode: the newest child servers followed (a reload starts a new one)


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
    """Parser + request timeline + live slot state + server facts, fed with lines in log order.

    In router mode the lines a child server wrote (prefixed `[port]`) go to that child's own monitor, so
    each model's tasks, slots, facts and clock stay its own (two children both number their tasks from 0).
    """

    def __init__(
        self,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        max_events: int = DEFAULT_MAX_EVENTS,
        *,
        split_children: bool = True,
    ) -> None:
        self.max_requests, self.max_events = max_requests, max_events
        self.split_children = split_children
        self.children: dict[int, LogMonitor] = {}  # router mode: port → that child's monitor, oldest first
        self.ports = RouterPorts()
        self.timed_tasks: set[int] = set()  # tasks whose speeds a journal row already took
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
            + self.ports.generation
            + sum(child.generation for child in self.children.values())
        )

    def feed_lines(self, lines: Iterable[str | bytes], arrived: float | None = None) -> list[ev.LogEvent]:
        """Parse and fold lines that arrived at ``arrived`` (epoch s, default now); returns their events."""
        arrived = time.time() if arrived is None else arrived
        items = lines if isinstance(lines, list) else list(lines)
        if not self.split_children or not any(line[:1] in ("[", b"[") for line in items):
            return self._feed_own(items, arrived)
        events: list[ev.LogEvent] = []
        run: list[str] = []
        run_port: int | None = None
        for raw in items:
            line = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
            port, text = split_child(strip_ansi(line)) if line[:1] == "[" else (None, line)
            if port != run_port and run:
                events += self._feed_run(run_port, run, arrived)
                run = []
            run_port = port
            run.append(text if port is not None else line)
        if run:
            events += self._feed_run(run_port, run, arrived)
        return events

    def _feed_run(self, port: int | None, lines: list[str], arrived: float) -> list[ev.LogEvent]:
        if port is None:
            return self._feed_own(lines, arrived)
        child = self.children.get(port)
        if child is None:
            child = LogMonitor(self.max_requests, self.max_events, split_children=False)
            self.children[port] = child
            while len(self.children) > MAX_CHILDREN:
                del self.children[next(iter(self.children))]
        events = child.feed_lines(lines, arrived)
        self.lines_seen += len(events)
        return events

    def _feed_own(self, lines: Sequence[str | bytes], arrived: float) -> list[ev.LogEvent]:
        events = self.parser.parse_lines(lines)
        if self.split_children:
            for event in events:
                if " on port " in event.line:
                    self.ports.note_line(event.line)
        self.feed_events(events)
        self.lines_seen += len(events)
        self._anchor_clock(events, arrived)
        return events

    def learn_ports(self, models: Iterable[tuple[str, Iterable[str]]]) -> None:
        """Router mode: (model id, its command line) from GET /models, for children started before the log
        lines the dashboard read."""
        for model, args in models:
            port = port_from_args(args)
            if port is not None:
                self.ports.set(port, model)

    def named(self, line: str) -> str:
        """A child's line for the log pane: its `[port]` prefix replaced by the model's name once known."""
        if line[:1] != "[" or not self.children:
            return line
        port, text = split_child(line)
        model = self.ports.models.get(port) if port is not None else None
        return f"[{model}] {text}" if model else line

    def for_model(self, model: str) -> LogMonitor:
        """The monitor of the child serving `model` (router mode), else this one."""
        port = self.ports.port_of(model, self.children) if model and self.children else None
        return self.children[port] if port is not None else self

    def model_monitors(self) -> dict[str, LogMonitor]:
        """Router mode: each model whose child's lines were read, with its monitor (the newest child)."""
        out: dict[str, LogMonitor] = {}
        for port, child in self.children.items():
            model = self.ports.models.get(port)
            if model is not None:
                out[model] = child
        return out

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
        if any(isinstance(e, ev.ModelLoading | ev.BuildInfo) for e in events):
            self.timed_tasks.clear()  # a restarted server numbers its tasks from 0 again
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


def events_of_model(
    text: str, model: str, ports: Iterable[tuple[str, Iterable[str]]] = ()
) -> tuple[ev.LogEvent, ...] | None:
    """Router mode: the events of one model's child in a router's log text (None: no line of it)."""
    monitor = LogMonitor(max_events=1_000_000)
    monitor.feed_lines(text.splitlines())
    monitor.learn_ports(ports)
    child = monitor.for_model(model)
    return None if child is monitor else child.snapshot(last_requests=0, last_events=None).recent_events
