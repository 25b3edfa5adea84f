"""The dashboard feed: takes observations from a driver (live or demo), emits bounded, coalesced updates."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from tui.core.feed.breaks import BreakExplainer
from tui.core.feed.flights import FlightProgress, FlightTracker
from tui.core.feed.slot_polls import PolledTasks, polled_slot_states
from tui.core.feed.slot_users import slot_users
from tui.core.feed.timings import needs_timings, with_timings
from tui.core.feed.updates import (
    FeedInfo,
    FeedUpdate,
    LogLine,
    LogUpdate,
    RecordsUpdate,
    SlotsUpdate,
    SourceStatus,
)
from tui.core.poll.snapshots import BufferSizes, GpuSnapshot, ServerSnapshot
from tui.core.records import RequestRecord

if TYPE_CHECKING:
    from tui.core.control.client import ControlClient
    from tui.core.feed.acting import ServerControl
    from tui.core.logs import events as ev
    from tui.core.logs.monitor import LogMonitor
    from tui.core.logs.state import SlotState

log = logging.getLogger(__name__)

Listener = Callable[[FeedUpdate], None]
DEFAULT_FLUSH_INTERVAL = 0.15


class FeedDriver(Protocol):
    """Where observations come from: live sources or a demo replay."""

    info: FeedInfo

    async def run(self, feed: DashboardFeed) -> None:
        """Push observations into the feed until cancelled."""

    def load_body(self, record_id: int) -> bytes | None:
        """The stored request body of one record (blocking; call it from a worker thread)."""

    def load_record(self, record_id: int) -> RequestRecord | None:
        """One record with its anatomy parts (blocking; call it from a worker thread)."""

    def take_backlog(self) -> list[RequestRecord] | None:
        """Journal rows already read for the first frame (once), or None."""

    def store_speeds(self, record: RequestRecord) -> None:
        """Keep speeds joined from the log in the record's journal row (no-op: a journal that is not ours)."""

    def control_client(self) -> ControlClient | None:
        """The control API of the proxy the acting keys use (None: nothing to act on, a replay)."""

    def server_control(self) -> ServerControl | None:
        """Start/stop/restart of the llama-server the data comes from (None: nothing to act on)."""


class DashboardFeed:
    """Owns the per-slot tracker and the log buffer; calls listeners from the event loop."""

    def __init__(
        self,
        driver: FeedDriver,
        *,
        log_lines: int = 2000,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        self.driver = driver
        # The log pipeline loads with the first log lines, so the first frame does not wait for it.
        self._monitor: LogMonitor | None = None
        self._listeners: list[Listener] = []
        self._pending_lines: deque[LogLine] = deque(maxlen=max(50, log_lines))
        self._dropped = 0
        self._slots_generation: object = None
        self._facts_shown: object = None
        self._buffer_events: deque[ev.LogEvent] = deque(maxlen=64)
        self._awaiting_timings: deque[RequestRecord] = deque(maxlen=32)
        # Backlog rows get one try, once the log's own backlog is read, so an old row never takes a new
        # task's speeds.
        self._backlog_awaiting: list[RequestRecord] = []
        self._log_backlog_read = False
        self._log_restart = False
        # Team mode: recent rows with a user, to name the user whose session each slot holds.
        self._user_rows: deque[RequestRecord] = deque(maxlen=64)
        self._slot_users: tuple[tuple[int, str], ...] = ()
        self._breaks = BreakExplainer()
        self._polled_shown: tuple[SlotState, ...] = ()
        self._polled = PolledTasks()  # /slots polls: explain cache losses with no log
        self._polled_models: dict[str, PolledTasks] = {}  # the same per model of a router (`?model=` polls)
        self._flights = FlightTracker()
        self._flights_shown: tuple[FlightProgress, ...] = ()
        self._flush_interval = flush_interval
        self._wake = asyncio.Event()
        # Set by the UI once its first frame shows the journal rows: drivers start slower sources then.
        self.ui_ready = asyncio.Event()
        self.server: ServerSnapshot | None = None
        # Monotonic time of the last sign of work (a record, a slot log line): drivers poll slower when quiet.
        self.last_activity = time.monotonic()
        self.on_activity: Callable[[], None] | None = None
        self.gpu: GpuSnapshot | None = None

    @property
    def monitor(self) -> LogMonitor:
        """The log parser and its trackers (created with the first log lines)."""
        if self._monitor is None:
            from tui.core.logs.monitor import LogMonitor

            self._monitor = LogMonitor()
        return self._monitor

    @property
    def info(self) -> FeedInfo:
        """Where the data comes from."""
        return self.driver.info

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` with every update (from the event loop thread)."""
        self._listeners.append(listener)

    def _emit(self, update: FeedUpdate) -> None:
        for listener in self._listeners:
            try:
                listener(update)
            except Exception:  # a broken listener must not stop the feed
                log.exception("feed listener failed")

    # --- ingest API for drivers -------------------------------------------------------------------

    def add_records(self, records: Sequence[RequestRecord], *, initial: bool = False) -> None:
        """New journal rows, oldest first (emitted at once: they are rare and the table wants them fast)."""
        if not records and not initial:
            return
        if records and not initial:
            self._note_activity()
        flying = set(self._flights.ids)
        finals = [r for r in records if r.id in flying and not r.in_flight]
        if finals:  # a final row that came as a new one (a remote feed): it replaces its in-flight row
            self.finish_records(finals)
            records = [r for r in records if not (r.id in flying and not r.in_flight)]
            if not records:
                return
        self._flights.add(records)
        out: list[RequestRecord] = []
        for record in records:
            if record.user:
                self._user_rows.append(record)
                self._wake.set()
            if initial:
                if needs_timings(record):
                    self._backlog_awaiting.append(record)
            elif needs_timings(record):
                filled = self._fill_timings(record)
                if filled is None:
                    self._awaiting_timings.append(record)
                else:
                    record = filled
            out.append(record)
        self._emit(RecordsUpdate(tuple(self._breaks.note(out)), initial=initial))
        if self._monitor is None and not initial:
            self._explain_from_polls()

    @property
    def in_flight_ids(self) -> list[int]:
        """Rows shown as in flight: the driver reads them again when the journal changes."""
        return self._flights.ids

    def finish_records(self, records: Sequence[RequestRecord]) -> None:
        """Final rows that replaced provisional ones (same ids): completed with what the log knew."""
        out: list[RequestRecord] = []
        for record in records:
            if record.in_flight:
                continue
            finished = self._flights.finish(record)
            if finished is not record:
                self.driver.store_speeds(finished)  # the server's count and the progress, kept
            if needs_timings(finished):
                filled = self._fill_timings(finished)
                if filled is None:
                    self._awaiting_timings.append(finished)
                else:
                    finished = filled
            out.append(finished)
        if out:
            self._note_activity()
            self._emit(RecordsUpdate(tuple(self._breaks.note(out)), replaced=True))
            self._wake.set()  # the flights shown change too
            if not self._log_followed():
                self._explain_from_polls()

    def deliver_backlog(self) -> None:
        """Emit the journal's newest rows now if the driver has already read them (for the first frame)."""
        rows = self.driver.take_backlog()
        if rows is not None:
            self.add_records(rows, initial=True)

    def _fill_timings(self, record: RequestRecord) -> RequestRecord | None:
        if self._monitor is None:
            return None
        monitor = self._monitor.for_model(record.model)  # router mode: the log of the model's own child
        tasks = reversed(monitor.timeline.requests(64))
        filled = with_timings(record, tasks, monitor.timed_tasks, monitor.wall_time)
        if filled is not None:
            self.driver.store_speeds(filled)
        return filled

    def _timed_rows(self) -> list[RequestRecord]:
        """Rows waiting for speeds that the log now has, newest first (newest rows match newest tasks)."""
        filled: list[RequestRecord] = []
        if self._awaiting_timings:
            filled = [r for r in map(self._fill_timings, reversed(self._awaiting_timings)) if r is not None]
            done = {r.id for r in filled}
            kept = [r for r in self._awaiting_timings if r.id not in done]
            self._awaiting_timings.clear()
            self._awaiting_timings.extend(kept)
        if self._backlog_awaiting and self._log_backlog_read:
            backlog = reversed(self._backlog_awaiting)
            self._backlog_awaiting = []
            filled += [r for r in map(self._fill_timings, backlog) if r is not None]
        return filled

    def add_log_lines(self, lines: Sequence[str]) -> None:
        """Raw log lines: parsed and folded now (LogMonitor), emitted in batches every flush interval."""
        from tui.core.logs import events as ev

        texts = [line.rstrip("\r\n") for line in lines]
        events = self.monitor.feed_lines(texts)
        active = False
        for text, event in zip(texts, events, strict=False):
            active = active or (event.slot is not None and event.slot >= 0)
            if isinstance(event, ev.BufferSize | ev.ModelLoading):
                self._buffer_events.append(event)
            if len(self._pending_lines) == self._pending_lines.maxlen:
                self._dropped += 1
            self._pending_lines.append(
                LogLine(self.monitor.named(text), _level_letter(event.level, text), event.slot, event.kind)
            )
        self._wake.set()
        if active:
            self._note_activity()

    def restart_log(self) -> None:
        """The log backlog comes again (a remote feed that did not resume): parse afresh, replace the pane."""
        self._monitor = None
        self._pending_lines.clear()
        self._dropped = 0
        self._log_restart = True
        self._slots_generation = None
        self._facts_shown = None
        self._buffer_events.clear()
        self._wake.set()

    def log_backlog_read(self) -> None:
        """The log lines written before the dashboard started are all in: match the journal backlog now."""
        self._log_backlog_read = True
        self._wake.set()

    def _note_activity(self) -> None:
        self.last_activity = time.monotonic()
        if self.on_activity is not None:
            self.on_activity()

    def set_server(self, snapshot: ServerSnapshot) -> None:
        """A new server poll."""
        self.server = snapshot
        if snapshot.models:  # router mode: which port serves which model, for the log's `[port]` lines
            self.monitor.learn_ports((m.id, m.args) for m in snapshot.models)
            self._wake.set()  # rows waiting for speeds may find their model's log now
            if not self._log_followed():
                polls = self._polled_models
                seen = [
                    polls.setdefault(m.id, PolledTasks()).observe(m.slots, m.slots_ts or snapshot.ts)
                    for m in snapshot.models
                    if m.slots
                ]
                if any(seen):
                    self._explain_from_polls()
        elif self._monitor is None:
            if self._polled.observe(snapshot.slots, snapshot.slots_ts or snapshot.ts):
                self._explain_from_polls()
            self._slots_from_polls(snapshot)
        self._emit(snapshot)

    def _slots_from_polls(self, snapshot: ServerSnapshot) -> None:
        """With no log followed: slot states and in-flight progress as far as /slots tells."""
        states = polled_slot_states(snapshot.slots, snapshot.ts)
        flights = self._flights.observe(states) if self._flights else ()
        shown = tuple(dataclasses.replace(s, updated_ts=None) for s in states)
        if shown != self._polled_shown or flights != self._flights_shown:
            self._polled_shown = shown
            self._flights_shown = flights
            self._emit(SlotsUpdate(states, self._slot_users, flights))

    def _explain_from_log(self, monitor: LogMonitor) -> list[RequestRecord]:
        """Rows whose cache the server lost, explained from the log; router mode: each model's rows from
        its own child's lines (each child has its own slots, tasks and clock)."""
        children = monitor.model_monitors()
        if not children:
            return self._breaks.explain(monitor.timeline, monitor.wall_time)
        explained: list[RequestRecord] = []
        for model, child in children.items():
            explained += self._breaks.explain(child.timeline, child.wall_time, model=model)
        return explained

    def _log_followed(self) -> bool:
        """Whether server log lines have been read (router mode creates the monitor before any line)."""
        return self._monitor is not None and self._monitor.lines_seen > 0

    def _explain_from_polls(self) -> None:
        """With no log followed: rows whose cache the server lost, explained from what /slots polls saw
        (router mode: each model's rows from its own slots)."""
        explained = self._breaks.explain(self._polled, _same_clock)
        for model, polled in self._polled_models.items():
            explained += self._breaks.explain(polled, _same_clock, model=model)
        for record in explained:
            self.driver.store_speeds(record)  # kept with the row, as the log's explanations are
        if explained:
            self._emit(RecordsUpdate(tuple(explained), replaced=True))

    def set_gpu(self, snapshot: GpuSnapshot) -> None:
        """A new GPU sample."""
        self.gpu = snapshot
        self._emit(snapshot)

    def set_status(self, status: SourceStatus) -> None:
        """A source changed state (missing log file, journal waiting, ...)."""
        self._emit(status)

    def buffers(self) -> tuple[BufferSizes, ...]:
        """Per-device buffer sizes from the log (the GPU sampler's no-GPU memory facts)."""
        from tui.core.poll.buffers import buffers_from_events

        return buffers_from_events(tuple(self._buffer_events))

    # --- running ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the driver and the log flusher until cancelled."""
        flusher = asyncio.create_task(self._flush_loop(), name="feed-flush")
        try:
            await self.driver.run(self)
        finally:
            flusher.cancel()
            self.flush()

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._flush_interval)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Emit pending log lines, slot activity and facts now."""
        if self._pending_lines or self._log_restart:
            lines = tuple(self._pending_lines)
            self._pending_lines.clear()
            self._emit(LogUpdate(lines, self._dropped, restart=self._log_restart))
            self._dropped = 0
            self._log_restart = False
        if self._monitor is None:
            return
        filled = self._breaks.note(self._timed_rows())
        explained = self._explain_from_log(self._monitor)
        for record in explained:
            self.driver.store_speeds(record)  # the explanation is kept with the row (report, findings)
        filled += explained
        if filled:
            self._emit(RecordsUpdate(tuple(filled), replaced=True))
        front = self._front_log()
        slot_log = front if self._one_model_running() else self._monitor
        tracker = slot_log.slot_tracker
        users = self._slot_users
        if self._user_rows:
            tasks = reversed(slot_log.timeline.requests(64))
            users = slot_users(self._user_rows, tasks, slot_log.wall_time)
        flights: tuple[FlightProgress, ...] = ()
        if self._flights and slot_log is front:
            flights = self._flights.observe(tracker.slots())
        elif self._flights:  # router mode, several models running: each request follows its model's log
            by_model = {m: log.slot_tracker.slots() for m, log in self._monitor.model_monitors().items()}
            flights = self._flights.observe((), by_model=by_model)
        changed = users != self._slot_users or flights != self._flights_shown
        generation = (id(tracker), tracker.generation)
        if generation != self._slots_generation or changed:
            self._slots_generation = generation
            self._slot_users = users
            self._flights_shown = flights
            self._emit(SlotsUpdate(tracker.slots(), users, flights))
        facts = front.facts_tracker.facts
        if facts is not self._facts_shown and facts != self._facts_shown:
            self._facts_shown = facts
            self._emit(facts)


    def _front_log(self) -> LogMonitor:
        """Router mode: the log of the model in front (the one requests went to last); else the one log."""
        assert self._monitor is not None
        server = self.server
        if server is None or not server.models or not server.model:
            return self._monitor
        return self._monitor.for_model(server.model)

    def _one_model_running(self) -> bool:
        """Router mode with one model loaded: its slots' log lines are the only slot work (no mix-up)."""
        server = self.server
        if server is None or not server.models:
            return True
        return sum(1 for m in server.models if m.status in ("loaded", "loading")) <= 1


def _same_clock(ts: float | None) -> float | None:
    """The /slots polls' clock is the wall clock already."""
    return ts


def _level_letter(level: str | None, text: str) -> str | None:
    if level:
        return level[:1].upper()
    parts = text.split(" ", 2)
    if len(parts) >= 2 and len(parts[1]) == 1 and parts[1] in "IWED":
        return parts[1]
    return None
