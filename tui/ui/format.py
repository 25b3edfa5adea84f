"""Small text helpers for the dashboard: compact numbers, times, bars and wrapped flows of entries."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from rich.text import Text


def tokens(n: int | float | None) -> str:
    """1234 -> "1.2k", 12345 -> "12k", 1234567 -> "1.2M"."""
    if n is None:
        return "–"
    value = float(n)
    if abs(value) < 1000:
        return f"{value:.0f}"
    if abs(value) < 10_000:
        return f"{value / 1000:.1f}k"
    if abs(value) < 1_000_000:
        return f"{value / 1000:.0f}k"
    return f"{value / 1_000_000:.1f}M"


def grouped(n: int | float | None) -> str:
    """12345 -> "12,345"."""
    return "–" if n is None else f"{n:,.0f}"


def rate(value: float | None) -> str:
    """Tokens per second, short."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def millis(value: float | None) -> str:
    """Milliseconds as "340ms" or "2.1s"."""
    if value is None:
        return "–"
    return f"{value:.0f}ms" if value < 1000 else f"{value / 1000:.1f}s"


def percent(fraction: float | None) -> str:
    """0.456 -> "46%"."""
    return "–" if fraction is None else f"{100 * fraction:.0f}%"


def mib(value: float | None) -> str:
    """MiB with a sensible unit."""
    if value is None:
        return "–"
    if value >= 1024:
        return f"{value / 1024:.1f} GiB"
    if value < 1:
        return f"{value * 1024:.0f} KiB"
    return f"{value:.1f} MiB" if value < 100 else f"{value:.0f} MiB"


def gib_bytes(value: int | None) -> str:
    """Bytes as GiB (or MiB when small)."""
    if value is None:
        return "–"
    return mib(value / (1024 * 1024))


def clock(ts: float, tz: dt.tzinfo | None = None) -> str:
    """Epoch seconds as HH:MM:SS in the given zone (local when None)."""
    return dt.datetime.fromtimestamp(ts, tz).strftime("%H:%M:%S")


def gauge(fraction: float, width: int, fill: str = "█", empty: str = "░") -> str:
    """A plain text gauge of `width` cells."""
    width = max(1, width)
    cells = round(max(0.0, min(1.0, fraction)) * width)
    return fill * cells + empty * (width - cells)


def flow(entries: Sequence[Text], width: int, gap: str = "  ") -> Text:
    """Join entries with `gap`, wrapping only between entries; an entry wider than a line is cropped."""
    out = Text()
    line_len = 0
    for entry in entries:
        length = entry.cell_len
        if line_len and line_len + len(gap) + length > width:
            out.append("\n")
            line_len = 0
        elif line_len:
            out.append(gap)
            line_len += len(gap)
        if length > width:
            entry = entry.copy()
            entry.truncate(width, overflow="ellipsis")
            length = width
        out.append_text(entry)
        line_len += length
    return out
