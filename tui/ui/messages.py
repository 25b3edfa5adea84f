"""Textual messages that carry feed updates from the feed callback to the main screen."""

from __future__ import annotations

from textual.message import Message

from tui.core.feed.updates import (
    FeedUpdate,
    LogUpdate,
    RecordsUpdate,
    SlotsUpdate,
    SourceStatus,
)
from tui.core.logs.state import ServerFacts
from tui.core.poll.snapshots import GpuSnapshot, ServerSnapshot


class RecordsAdded(Message):
    """New journal rows."""

    def __init__(self, update: RecordsUpdate) -> None:
        super().__init__()
        self.update = update


class LogAdded(Message):
    """A batch of log lines."""

    def __init__(self, update: LogUpdate) -> None:
        super().__init__()
        self.update = update


class ServerChanged(Message):
    """A new server poll; only the newest waits in the queue."""

    def __init__(self, snapshot: ServerSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        """A newer snapshot supersedes an older one."""
        return isinstance(message, ServerChanged)


class GpuChanged(Message):
    """A new GPU sample; only the newest waits in the queue."""

    def __init__(self, snapshot: GpuSnapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        """A newer sample supersedes an older one."""
        return isinstance(message, GpuChanged)


class SlotsChanged(Message):
    """Per-slot activity from the log; only the newest waits in the queue."""

    def __init__(self, update: SlotsUpdate) -> None:
        super().__init__()
        self.update = update

    def can_replace(self, message: Message) -> bool:
        """A newer activity snapshot supersedes an older one."""
        return isinstance(message, SlotsChanged)


class FactsChanged(Message):
    """Facts from the server log (buffers, n_ctx_train)."""

    def __init__(self, facts: ServerFacts) -> None:
        super().__init__()
        self.facts = facts

    def can_replace(self, message: Message) -> bool:
        """Newer facts supersede older ones."""
        return isinstance(message, FactsChanged)


class SourceChanged(Message):
    """A source changed state."""

    def __init__(self, status: SourceStatus) -> None:
        super().__init__()
        self.status = status


def message_for(update: FeedUpdate) -> Message:
    """Wrap one feed update in its message type."""
    if isinstance(update, RecordsUpdate):
        return RecordsAdded(update)
    if isinstance(update, LogUpdate):
        return LogAdded(update)
    if isinstance(update, ServerSnapshot):
        return ServerChanged(update)
    if isinstance(update, GpuSnapshot):
        return GpuChanged(update)
    if isinstance(update, SlotsUpdate):
        return SlotsChanged(update)
    if isinstance(update, ServerFacts):
        return FactsChanged(update)
    return SourceChanged(update)
