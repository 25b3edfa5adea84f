"""After a restore: how much of the next prompt the server took from the cache, read from its log."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tui.core.logs import events as ev
from tui.core.logs.parse import parse_text


@dataclass(frozen=True)
class ReuseCheck:
    """The first request after a point in the log: prompt length, tokens reused, why it re-processed."""

    slot: int | None
    n_prompt: int
    n_cached: int
    full_reprocess: str = ""

    def describe(self) -> str:
        """One line for the CLI and the dashboard."""
        share = self.n_cached / self.n_prompt if self.n_prompt else 0.0
        text = f"the next request reused {self.n_cached:,} of {self.n_prompt:,} prompt tokens ({share:.0%})"
        if self.full_reprocess:
            text += f"; the server re-processed the whole prompt: {self.full_reprocess}"
        return text


def log_size(path: Path) -> int:
    """Where the log ends now (the next request's lines come after it)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def first_reuse(path: Path, offset: int) -> ReuseCheck | None:
    """The first request logged after `offset` whose cache reuse is known, None when none yet."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    prompt: ev.NewPrompt | None = None
    reprocess = ""
    for event in parse_text(text):
        if isinstance(event, ev.NewPrompt):
            prompt, reprocess = event, ""
        elif isinstance(event, ev.FullReprocess) and prompt is not None:
            reprocess = event.reason
        elif isinstance(event, ev.CachedPrefix) and prompt is not None:
            return ReuseCheck(prompt.slot, prompt.n_prompt_tokens, event.n_cached, reprocess)
    return None


def await_reuse(
    path: Path, offset: int, timeout: float, stop: Callable[[], bool] = lambda: False, poll: float = 0.5
) -> ReuseCheck | None:
    """Wait up to `timeout` seconds (or until `stop()`) for the next request's reuse; None when none came."""
    deadline = time.monotonic() + timeout
    while True:
        found = first_reuse(path, offset)
        if found is not None or time.monotonic() >= deadline or stop():
            return found
        time.sleep(poll)
