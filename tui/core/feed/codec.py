"""Plain-JSON forms of journal rows and poller snapshots, for demo recordings."""

from __future__ import annotations

from typing import Any

from tui.core.anatomy.model import Anatomy
from tui.core.poll.snapshots import (
    BufferSizes,
    GpuDevice,
    GpuSnapshot,
    MetricsSnapshot,
    ServerSnapshot,
    SlotSnapshot,
)
from tui.core.records import CacheBreak, RequestRecord, Usage


def record_to_json(record: RequestRecord) -> dict[str, Any]:
    """The `requests --json` form plus the anatomy parts and has_body."""
    out = record.to_json()
    out["anatomy"] = record.anatomy.to_json(with_parts=True) if record.anatomy else None
    out["has_body"] = record.has_body
    return out


def record_from_json(data: dict[str, Any]) -> RequestRecord:
    """Rebuild a RequestRecord from `record_to_json` (or `requests --json`) output."""
    anatomy = data.get("anatomy")
    cache_break = data.get("cache_break")
    return RequestRecord(
        id=int(data["id"]),
        ts=float(data["ts"]),
        method=str(data.get("method", "POST")),
        path=str(data.get("path", "")),
        status=int(data.get("status", 0)),
        session_id=str(data.get("session", data.get("session_id", ""))),
        kind=str(data.get("kind", "main")),
        model=str(data.get("model", "")),
        dialect=str(data.get("dialect", "")),
        stream=bool(data.get("stream", False)),
        ttfb_ms=data.get("ttfb_ms"),
        total_ms=data.get("total_ms"),
        request_bytes=int(data.get("request_bytes", 0)),
        response_bytes=int(data.get("response_bytes", 0)),
        anatomy=Anatomy.from_json(anatomy) if anatomy else None,
        usage=Usage.from_json(data.get("usage") or {}),
        cache_break=CacheBreak.from_json(cache_break) if cache_break else None,
        unparsed_reason=data.get("unparsed_reason"),
        error=data.get("error"),
        has_body=bool(data.get("has_body", False)),
    )


def _fields(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def server_to_json(snap: ServerSnapshot) -> dict[str, Any]:
    """Plain-JSON form of a ServerSnapshot."""
    out = _fields(snap)
    out["slots"] = [_fields(s) for s in snap.slots]
    out["metrics"] = _fields(snap.metrics) if snap.metrics else None
    out["notes"] = list(snap.notes)
    return out


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
