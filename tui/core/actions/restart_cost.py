"""What a restart throws away: the tokens cached in the server's slots and the time to process them again."""

from __future__ import annotations

from collections.abc import Sequence

from tui.core.poll.snapshots import ServerSnapshot


def measured_prompt_speed(server: ServerSnapshot | None, recent: Sequence[float] = ()) -> float | None:
    """Prompt tokens per second: the server's own average (/metrics), else the median of recent requests."""
    metrics = server.metrics if server is not None else None
    if metrics is not None and metrics.prompt_seconds_total > 0 and metrics.prompt_tokens_total > 0:
        return metrics.prompt_tokens_total / metrics.prompt_seconds_total
    speeds = sorted(s for s in recent if s > 0)
    return speeds[len(speeds) // 2] if speeds else None


def cached_tokens(server: ServerSnapshot | None) -> int | None:
    """Tokens held in all slots' KV cache right now (None when the server's slots are not known)."""
    if server is None or not server.slots:
        return None
    return sum(slot.n_prompt_tokens for slot in server.slots)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"~{max(round(seconds), 1)} s"
    return f"~{round(seconds / 60)} min"


def restart_cost_note(server: ServerSnapshot | None, recent_speeds: Sequence[float] = ()) -> str:
    """One line for the restart dialog: the cache a restart keeps when it can, else the time to rebuild it."""
    tokens = cached_tokens(server)
    if tokens is None:
        return "cache: unknown (no /slots answer from the server yet)"
    if tokens == 0:
        return "cache: empty, nothing to re-process"
    slots = len([s for s in server.slots if s.n_prompt_tokens]) if server is not None else 0
    speed = measured_prompt_speed(server, recent_speeds)
    # A restart keeps the cache when it can (slot_cache); the cost shown is for when it cannot.
    held = f"~{tokens:,} cached tokens ({slots} slot{'s' if slots != 1 else ''})"
    text = f"keeps {held} when it can; otherwise "
    if speed is None:
        return text + "all are processed again (prompt speed not measured yet)"
    return text + f"{_duration(tokens / speed)} to process them again at the measured {speed:,.0f} t/s"
