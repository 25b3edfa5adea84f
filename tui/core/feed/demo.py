"""Replays a demo recording into the feed at real or faster speed (or all at once for tests)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import TYPE_CHECKING

from tui.core.feed.codec import gpu_from_json, record_from_json, server_from_json
from tui.core.feed.recording import DEMO_RECORDING, Recording, RecordingEntry, load_recording
from tui.core.feed.updates import FeedInfo, SourceStatus
from tui.core.poll.snapshots import GpuSnapshot, ServerSnapshot
from tui.core.records import RequestRecord

LOOP_PAUSE_S = 3.0

if TYPE_CHECKING:
    from tui.core.feed.feed import DashboardFeed


class DemoDriver:
    """Feeds recorded journal rows, log lines and snapshots through the same feed as live sources."""

    def __init__(
        self,
        recording: Recording | None = None,
        *,
        speed: float = 4.0,
        until: float | None = None,
        clock_base: float | None = None,
        loop: bool = False,
        loop_pause: float = LOOP_PAUSE_S,
    ) -> None:
        self.recording = recording if recording is not None else load_recording(DEMO_RECORDING)
        self.speed = speed
        self.until = until
        self.loop = loop and speed > 0
        self.loop_pause = loop_pause
        self._round = 0
        self._id_step = max(
            (int(e.data["id"]) for e in self.recording.entries if e.type == "record"), default=0
        )
        self._clock_base = clock_base
        meta = self.recording.meta
        self.info = FeedInfo(
            mode="demo",
            proxy_address=str(meta.get("proxy", "demo replay")),
            journal_path="(demo recording)",
            log_path=str(meta.get("log_file", "(demo recording)")),
            server_url=str(meta.get("server_url", "")),
        )
        self.finished = False
        self._records: dict[int, RequestRecord] = {}

    def take_backlog(self) -> list[RequestRecord] | None:
        """No journal backlog: the replay delivers its rows itself."""
        return None

    def store_speeds(self, record: RequestRecord) -> None:
        """A recording is not written to."""

    def control_client(self) -> None:
        """A replay has no proxy to act on."""
        return None

    def server_control(self) -> None:
        """Nor a server."""
        return None

    def load_body(self, record_id: int) -> bytes | None:
        """Bodies stored in the recording (only some requests carry one)."""
        return self.recording.bodies.get(record_id)

    def load_record(self, record_id: int) -> RequestRecord | None:
        """The recorded row (recordings keep the anatomy parts), with its replayed time."""
        return self._records.get(record_id)

    def _ts(self, base: float, entry: RecordingEntry) -> float:
        return base + (entry.t / self.speed if self.speed > 0 else entry.t)

    async def run(self, feed: DashboardFeed) -> None:
        """Dispatch every entry at its time (speed <= 0: all at once); with loop, start over after a pause."""
        feed.set_status(SourceStatus("journal", "ok", "demo: replaying a recorded session"))
        feed.set_status(SourceStatus("log", "ok", "demo: recorded llama-server log"))
        feed.add_records([], initial=True)
        while True:
            await self._replay_once(feed)
            if not self.loop:
                break
            await asyncio.sleep(self.loop_pause)
            self._round += 1
        self.finished = True
        feed.set_status(SourceStatus("journal", "ok", "demo: recording finished; press q to quit"))

    async def _replay_once(self, feed: DashboardFeed) -> None:
        base = self._clock_base if self._clock_base is not None else time.time()
        started = time.monotonic()
        lines: list[str] = []
        for entry in self.recording.entries:
            if self.until is not None and entry.t > self.until:
                break
            if self.speed > 0:
                delay = entry.t / self.speed - (time.monotonic() - started)
                if delay > 0:
                    if lines:
                        feed.add_log_lines(lines)
                        lines = []
                    await asyncio.sleep(delay)
            if entry.type == "log":
                lines.append(str(entry.data))
                continue
            if lines:
                feed.add_log_lines(lines)
                lines = []
            self._dispatch(feed, base, entry)
        if lines:
            feed.add_log_lines(lines)

    def _dispatch(self, feed: DashboardFeed, base: float, entry: RecordingEntry) -> None:
        ts = self._ts(base, entry)
        if entry.type == "record":
            record = record_from_json(entry.data)
            record = dataclasses.replace(record, ts=ts, id=record.id + self._round * self._id_step)
            self._records[record.id] = record
            feed.add_records([record])
        elif entry.type == "server":
            server: ServerSnapshot = server_from_json(entry.data)
            feed.set_server(dataclasses.replace(server, ts=ts))
        elif entry.type == "gpu":
            gpu: GpuSnapshot = gpu_from_json(entry.data)
            feed.set_gpu(dataclasses.replace(gpu, ts=ts))
