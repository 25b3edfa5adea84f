"""Timed waits keep a cancellation that arrives as the awaited event is set (3.11's wait_for lost it)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tui.core.waits import wait_set, within

TUI = Path(__file__).resolve().parents[1] / "tui"


async def cancel_as_set(wait: Callable[[asyncio.Event], Awaitable[object]]) -> str:
    """Set the event and cancel the waiting task in the same loop step; what became of the task."""
    event = asyncio.Event()

    async def waiter() -> str:
        await wait(event)
        return "ran on"

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)  # the task is now waiting
    event.set()
    task.cancel()
    try:
        return await task
    except asyncio.CancelledError:
        return "cancelled"


async def test_a_cancel_arriving_as_the_event_is_set_is_kept() -> None:
    assert await cancel_as_set(lambda e: wait_set(e, 10)) == "cancelled"


async def test_the_same_race_loses_the_cancel_with_wait_for_before_3_12() -> None:
    """Why the helper exists: the scenario above really is the race (a loop would run on after it); 3.12
    rebuilt wait_for on asyncio.timeout and keeps the cancel."""
    expected = "ran on" if sys.version_info < (3, 12) else "cancelled"
    assert await cancel_as_set(lambda e: asyncio.wait_for(e.wait(), 10)) == expected


async def test_wait_set_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 0.01) is True


async def test_within_times_out_and_cancels_what_it_awaited() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(TimeoutError):
        await within(slow(), 0.01)
    assert cancelled.is_set()
    assert await within(asyncio.sleep(0, "done"), 1) == "done"


def test_no_module_uses_asyncio_wait_for() -> None:
    """Every timed wait in the package goes through tui.core.waits."""
    users = [
        str(path.relative_to(TUI.parent))
        for path in TUI.rglob("*.py")
        if re.search(r"\bwait_for\(", path.read_text()) and path.name != "waits.py"
    ]
    assert users == []
