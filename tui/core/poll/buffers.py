"""Turn the server log's buffer-size events into per-device memory facts (the no-GPU fallback)."""

from __future__ import annotations

from collections.abc import Iterable

from tui.core.logs.events import BufferSize, LogEvent, ModelLoading
from tui.core.poll.snapshots import BufferSizes

_FIELD = {"model": "model_mib", "kv": "kv_mib", "compute": "compute_mib", "output": "output_mib",
          "rs": "recurrent_mib"}


def buffers_from_events(events: Iterable[LogEvent]) -> tuple[BufferSizes, ...]:
    """Per-device buffer sizes of the latest model load (a reload after sleep starts a new group)."""
    group: dict[str, dict[str, float]] = {}
    seen_non_model = False
    for event in events:
        if isinstance(event, ModelLoading):
            group, seen_non_model = {}, False
            continue
        if not isinstance(event, BufferSize) or event.buffer not in _FIELD:
            continue
        if event.buffer == "model" and seen_non_model:
            group, seen_non_model = {}, False
        seen_non_model = seen_non_model or event.buffer != "model"
        sizes = group.setdefault(event.device, {})
        key = _FIELD[event.buffer]
        # Two KV caches (full + SWA) log one line each on the same device: they add up.
        sizes[key] = sizes.get(key, 0.0) + event.size_mib
    return tuple(BufferSizes(device=device, **sizes) for device, sizes in group.items())
