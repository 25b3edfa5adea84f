"""The one error type of server control (start, stop, restart, slot saves)."""

from __future__ import annotations


class ServerControlError(RuntimeError):
    """A start/stop/restart could not be done; the message says why and what to do."""
