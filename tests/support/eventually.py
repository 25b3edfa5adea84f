"""Waiting for a condition in tests: one helper that fails loudly with what it waited for and saw."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class NotReached(AssertionError):
    """The condition did not hold before the timeout."""


def _failure(what: str, timeout: float, seen: object) -> NotReached:
    detail = f"; last seen: {seen!r}" if seen is not None else ""
    return NotReached(f"{what} not reached within {timeout:g} s{detail}")


async def eventually(
    check: Callable[[], T], *, timeout: float = 30.0, what: str = "condition", interval: float = 0.05,
    seen: Callable[[], object] | None = None,
) -> T:
    """Run the event loop until `check()` returns something truthy (returned); NotReached after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _failure(what, timeout, seen() if seen is not None else None)
        await asyncio.sleep(interval)


def eventually_sync(
    check: Callable[[], T], *, timeout: float = 30.0, what: str = "condition", interval: float = 0.1,
    seen: Callable[[], object] | None = None,
) -> T:
    """The blocking form of eventually(), for tests that drive subprocesses and tmux."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _failure(what, timeout, seen() if seen is not None else None)
        time.sleep(interval)
