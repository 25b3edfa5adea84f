"""Immutable updates the feed hands to its listener (the dashboard)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tui.core.feed.flights import FlightProgress
from tui.core.logs.state import ServerFacts, SlotState
from tui.core.poll.snapshots import GpuSnapshot, ServerSnapshot
from tui.core.records import RequestRecord

FeedMode = Literal["live", "attach", "demo", "remote"]
# "link": the network link to a remote `ctxbudget serve` (--connect).
SourceName = Literal["journal", "log", "server", "gpu", "proxy", "link"]
SourceHealth = Literal["ok", "waiting", "missing", "error", "off"]


@dataclass(frozen=True)
class FeedInfo:
    """Static facts about where the feed gets its data."""

    mode: FeedMode
    proxy_address: str = ""
    journal_path: str = ""
    log_path: str = ""
    server_url: str = ""
    remote: str = ""  # --connect: the serve address (host:port) the data comes from
    remote_host: str = ""  # --connect: the server machine's host name, as it reports it


@dataclass(frozen=True)
class SourceStatus:
    """The state of one source, with what to do when it is not ok."""

    source: SourceName
    health: SourceHealth
    message: str = ""


@dataclass(frozen=True)
class RecordsUpdate:
    """New journal rows, oldest first; `initial`: the backlog; `replaced`: rows shown before, now updated."""

    records: tuple[RequestRecord, ...]
    initial: bool = False
    replaced: bool = False


@dataclass(frozen=True)
class LogLine:
    """One llama-server log line with what the parser found out about it."""

    text: str
    level: str | None
    slot: int | None
    kind: str


@dataclass(frozen=True)
class LogUpdate:
    """Log lines collected since the last update; `dropped` counts lines lost to the buffer bound.

    `restart`: the lines before these are replaced (a remote feed that could not resume sends its log
    backlog again).
    """

    lines: tuple[LogLine, ...]
    dropped: int = 0
    restart: bool = False


@dataclass(frozen=True)
class SlotsUpdate:
    """Per-slot state from the log (task, phase, progress, checkpoints), and the requests they serve."""

    slots: tuple[SlotState, ...]
    # Team mode: (slot, user) of the request each slot last served, when the journal says it surely.
    users: tuple[tuple[int, str], ...] = ()
    flights: tuple[FlightProgress, ...] = ()


FeedUpdate = (
    RecordsUpdate | LogUpdate | SlotsUpdate | ServerSnapshot | GpuSnapshot | SourceStatus | ServerFacts
)
