"""Percentiles, prompt-size buckets and small Unicode charts used by reports."""

from __future__ import annotations

import math
from collections.abc import Sequence

# Upper bounds (exclusive) of the prompt-size buckets, in tokens; the last bucket is open-ended.
SIZE_BOUNDS: tuple[int, ...] = (8 * 1024, 32 * 1024, 64 * 1024, 128 * 1024)
SIZE_LABELS: tuple[str, ...] = ("<8k", "8-32k", "32-64k", "64-128k", ">128k")

SPARK_CHARS = "▁▂▃▄▅▆▇█"
BAR_EIGHTHS = " ▏▎▍▌▋▊▉"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (an observed value; None for no values), q in 0..100."""
    if not values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def size_bucket(tokens: int) -> str:
    """The label of the prompt-size bucket holding `tokens`."""
    for bound, label in zip(SIZE_BOUNDS, SIZE_LABELS, strict=False):
        if tokens < bound:
            return label
    return SIZE_LABELS[-1]


def sparkline(values: Sequence[float]) -> str:
    """One block character per value, scaled from 0 to the maximum (empty for no values)."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK_CHARS[0] * len(values)
    last = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[min(last, round(max(v, 0) / top * last))] for v in values)


def bar(value: float, top: float, width: int = 30) -> str:
    """A horizontal bar of `width` cells at full scale, in eighth-cell steps."""
    if top <= 0 or value <= 0:
        return ""
    eighths = round(min(value / top, 1.0) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (BAR_EIGHTHS[rest] if rest else "")
