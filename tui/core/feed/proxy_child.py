"""The dashboard's proxy process: settings, then server snapshots arrive on stdin; its EOF stops it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from tui.core.config import Settings, settings_from_dict
from tui.core.poll.snapshots import ServerSnapshot

NOTICE_TEXT = 600  # characters; 6 bytes each at worst once JSON-escaped: under Linux PIPE_BUF (4096)
# The sections the proxy reads; the dashboard's own ones ([keys], [report], [dashboard]) stay behind.
PROXY_SECTIONS = ("proxy", "journal", "anatomy", "server", "agent", "compact", "transforms", "gpu", "team")


def settings_message(settings: Settings, journal_path: Path) -> bytes:
    """The one line the dashboard writes to the child's stdin (a pipe: secrets never touch disk)."""
    sections = {name: dataclasses.asdict(getattr(settings, name)) for name in PROXY_SECTIONS}
    message = {"settings": sections, "source": settings.source, "journal": str(journal_path)}
    return json.dumps(message).encode() + b"\n"


def settings_from_message(line: bytes) -> tuple[Settings, Path]:
    """Parse what settings_message wrote."""
    data: dict[str, Any] = json.loads(line)
    return settings_from_dict(data["settings"], str(data["source"])), Path(data["journal"])


def server_message(snapshot: ServerSnapshot) -> bytes:
    """A server poll the dashboard passes on to its proxy (one line after the settings)."""
    from tui.core.feed.codec import server_to_json

    return json.dumps({"server": server_to_json(snapshot)}).encode() + b"\n"


def server_from_message(line: bytes) -> ServerSnapshot | None:
    """Parse what server_message wrote (None for anything else)."""
    from tui.core.feed.codec import server_from_json

    data = json.loads(line)
    return server_from_json(data["server"]) if isinstance(data, dict) and "server" in data else None


def report(**fields: object) -> None:
    """One JSON line to the dashboard: listening or error (before the proxy serves)."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def notify(**fields: object) -> None:
    """A row or problem notice that never blocks the proxy's loop: dropped while the pipe is full.

    A dashboard that stops reading (suspended, or its loop stalled) must not stall forwarding; a dropped
    row notice only means it finds the row on its next journal check (at most a second later).
    """
    # Texts are cut so that even fully escaped the line stays one atomic write.
    short = {key: value[:NOTICE_TEXT] if isinstance(value, str) else value for key, value in fields.items()}
    line = (json.dumps(short) + "\n").encode()
    try:
        os.write(sys.stdout.fileno(), line)  # a pipe write up to PIPE_BUF is whole or nothing
    except BlockingIOError:
        pass


async def serve(settings: Settings, journal_path: Path) -> int:
    """Listen until stdin closes or SIGTERM; 1 when the proxy cannot start."""
    from tui.core.proxy.server_watch import serve_until
    from tui.core.proxy.service import JournalOpenError, ProxyService

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # Each journaled row is announced on stdout: the dashboard reads the journal at once instead of polling.
    service = ProxyService(
        settings, journal_path=journal_path, on_record=lambda record: notify(row=record.id)
    )
    service.on_flight = lambda record: notify(row=record.id)  # in-flight rows show at once too
    service.on_problem = lambda text: notify(problem=text)  # the dashboard's header and a toast show it
    try:
        await service.start()
    except OSError as exc:
        report(error=f"cannot listen on {settings.proxy.listen}: {exc.strerror or exc}")
        return 1
    except JournalOpenError as exc:
        report(error=str(exc))
        return 1
    report(listening=service.url)
    os.set_blocking(sys.stdout.fileno(), False)  # from here on only notify() writes to the dashboard

    def watch_stdin() -> None:
        # The dashboard's own server polls arrive here, so llama-server is polled once, not twice.
        for line in sys.stdin.buffer:
            try:
                snapshot = server_from_message(line)
            except (ValueError, TypeError, KeyError):
                continue  # a torn line from a dying dashboard: EOF follows
            if snapshot is not None:
                loop.call_soon_threadsafe(service.observe_server, snapshot)
        loop.call_soon_threadsafe(stop.set)  # EOF: the dashboard closed the pipe or died (kill -9 too)

    threading.Thread(target=watch_stdin, name="parent-watch", daemon=True).start()
    await serve_until(service, stop, poll=False)
    return 0


def main() -> int:
    """Entry point: `python -m tui.core.feed.proxy_child`, started by the dashboard only."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the dashboard decides when its proxy stops
    line = sys.stdin.buffer.readline()
    if not line:
        return 0
    settings, journal_path = settings_from_message(line)
    return asyncio.run(serve(settings, journal_path))


if __name__ == "__main__":
    sys.exit(main())
