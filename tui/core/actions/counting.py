"""Token counts for actions: a TokenCounter when given, else a clearly labelled chars/4 estimate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tui.core.tokens import TokenCounter, measure

ESTIMATE_NAME = "estimate (chars/4)"


@dataclass(frozen=True)
class TextCounts:
    """Counts of several texts and who produced them."""

    values: tuple[int, ...]
    counter: str
    exact: bool

    @property
    def total(self) -> int:
        """Sum of all counts."""
        return sum(self.values)


def count_texts(texts: Sequence[str], counter: TokenCounter | None = None) -> TextCounts:
    """Count with the counter; without one (or when it fails) estimate 4 characters per token."""
    if counter is not None and texts:
        try:
            counts = measure(counter, list(texts))
            return TextCounts(tuple(counts.values), counts.counter, counts.exact)
        except Exception:  # any counter failure falls back to the labelled estimate
            pass
    return TextCounts(tuple((len(t) + 3) // 4 for t in texts), ESTIMATE_NAME, False)
