"""Plain-JSON forms of journal rows and poller snapshots, for demo recordings."""

from __future__ import annotations

from typing import Any

from tui.core.poll.snapshots import (
    BufferSizes,
    GpuDevice,
    GpuSnapshot,
    MetricsSnapshot,
    RouterModel,
    ServerSnapshot,
    SlotSnapshot,
)
from tui.core.records import RequestRecord, record_from_plain, record_to_plain


def record_to_json(record: RequestRecord) -> dict[str, Any]:
    """Every column of the record as plain JSON, the anatomy with its parts (the demo recording form)."""
    out = record_to_plain(record)
    out["anatomy"] = record.anatomy.to_json(with_parts=True) if record.anatomy else None
    return out


def record_from_json(data: dict[str, Any]) -> RequestRecord:
    """Rebuild a RequestRecord from `record_to_json` (or `requests --json`) output."""
    return record_from_plain(data)


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def server_to_json(snap: ServerSnapshot) -> dict[str, Any]:
    """Plain-JSON form of a ServerSnapshot."""
    out = _fields(snap)
    out["slots"] = [_fields(s) for s in snap.slots]
    out["metrics"] = _fields(snap.metrics) if snap.metrics else None
    out["notes"] = list(snap.notes)
    out["models"] = [
        {**_fields(m), "slots": [_fields(s) for s in m.slots], "args": list(m.args)} for m in snap.models
    ]
    return out


def _slot(data: dict[str, Any]) -> SlotSnapshot:
    return SlotSnapshot(**{k: v for k, v in data.items() if k in SlotSnapshot.__dataclass_fields__})


def _router_model(data: dict[str, Any]) -> RouterModel:
    fields = {k: v for k, v in data.items() if k in RouterModel.__dataclass_fields__}
    fields["slots"] = tuple(_slot(s) for s in data.get("slots", []))
    fields["args"] = tuple(data.get("args", ()))
    return RouterModel(**fields)


def server_from_json(data: dict[str, Any]) -> ServerSnapshot:
    """Rebuild a ServerSnapshot from `server_to_json` output."""
    known = ServerSnapshot.__dataclass_fields__
    fields = {k: v for k, v in data.items() if k in known}
    fields["slots"] = tuple(
        SlotSnapshot(**{k: v for k, v in s.items() if k in SlotSnapshot.__dataclass_fields__})
        for s in data.get("slots", [])
    )
    metrics = data.get("metrics")
    fields["metrics"] = (
        MetricsSnapshot(**{k: v for k, v in metrics.items() if k in MetricsSnapshot.__dataclass_fields__})
        if metrics
        else None
    )
    fields["notes"] = tuple(data.get("notes", ()))
    fields["models"] = tuple(_router_model(m) for m in data.get("models", ()))
    return ServerSnapshot(**fields)


def gpu_to_json(snap: GpuSnapshot) -> dict[str, Any]:
    """Plain-JSON form of a GpuSnapshot."""
    out = _fields(snap)
    out["devices"] = [_fields(d) for d in snap.devices]
    out["buffers"] = [_fields(b) for b in snap.buffers]
    return out


def gpu_from_json(data: dict[str, Any]) -> GpuSnapshot:
    """Rebuild a GpuSnapshot from `gpu_to_json` output."""
    known = GpuSnapshot.__dataclass_fields__
    fields = {k: v for k, v in data.items() if k in known}
    fields["devices"] = tuple(
        GpuDevice(**{k: v for k, v in d.items() if k in GpuDevice.__dataclass_fields__})
        for d in data.get("devices", [])
    )
    fields["buffers"] = tuple(
        BufferSizes(**{k: v for k, v in b.items() if k in BufferSizes.__dataclass_fields__})
        for b in data.get("buffers", [])
    )
    return GpuSnapshot(**fields)
