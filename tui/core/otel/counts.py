"""The export counts /health shows, summed over analysis workers (a restarted worker starts from zero)."""

from __future__ import annotations

from typing import Any

SUMMED = ("queued", "exported", "failed", "dropped")


def retire(before: dict[str, int], last: dict[str, Any] | None) -> dict[str, int]:
    """Totals of the workers gone so far, after one more exited; its pending spans count as `lost`."""
    if not last:
        return before
    out = dict(before)
    for key in SUMMED:
        out[key] = out.get(key, 0) + int(last.get(key) or 0)
    out["lost"] = out.get("lost", 0) + int(last.get("pending") or 0)
    return out


def combined(before: dict[str, int], current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The current worker's status with the earlier workers' counts added (None: export is off)."""
    if current is None and not before:
        return None
    out: dict[str, Any] = dict(current or {"pending": 0, "last_error": None})
    for key in SUMMED:
        out[key] = int(out.get(key) or 0) + before.get(key, 0)
    out["lost"] = before.get("lost", 0)
    return out
