"""Collectors for llama-server state and GPU usage, returning frozen snapshots."""

from tui.core.poll.buffers import buffers_from_events
from tui.core.poll.gpu import GpuSampler
from tui.core.poll.server_poller import ServerPoller
from tui.core.poll.snapshots import (
    BufferSizes,
    GpuDevice,
    GpuSnapshot,
    MetricsSnapshot,
    ServerSnapshot,
    ServerState,
    SlotSnapshot,
)

__all__ = [
    "BufferSizes",
    "GpuDevice",
    "GpuSampler",
    "GpuSnapshot",
    "MetricsSnapshot",
    "ServerPoller",
    "ServerSnapshot",
    "ServerState",
    "SlotSnapshot",
    "buffers_from_events",
]
