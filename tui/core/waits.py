"""Timed waits that never lose a cancellation.

Python 3.11's `asyncio.wait_for` returns the result instead of raising when what it awaits finishes just
as the task is cancelled: a loop waiting on an event that is set at that moment (a journal notice during
shutdown) swallowed the cancel and ran on, so stopping the dashboard's sources hung. `asyncio.timeout`
keeps the cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_set(event: asyncio.Event, timeout: float) -> bool:
    """True once `event` is set, False after `timeout` seconds; a cancellation always propagates."""
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def within(awaitable: Awaitable[T], timeout: float) -> T:
    """`awaitable`'s result, or TimeoutError after `timeout` seconds (it is cancelled then)."""
    async with asyncio.timeout(timeout):
        return await awaitable
