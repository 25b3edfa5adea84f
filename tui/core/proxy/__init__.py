"""The pass-through reverse proxy between a coding agent and llama-server."""

from __future__ import annotations

from tui.core.proxy.address import ListenAddress, RemoteListenError, parse_listen
from tui.core.proxy.service import JournalOpenError, ProxyService

__all__ = ["JournalOpenError", "ListenAddress", "ProxyService", "RemoteListenError", "parse_listen"]
