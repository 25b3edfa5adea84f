"""Which actions can run now, and the plain reason shown when one cannot."""

from __future__ import annotations

from tui.core.feed.updates import FeedMode

NOT_YET = "not available yet in this version"
LATER_ACTIONS: dict[str, str] = {
    "compact": f"compacting the agent's context is {NOT_YET}",
    "restart_server": f"restarting llama-server is {NOT_YET}",
    "transforms": f"request transforms are {NOT_YET}",
    "toggle_server": f"turning MCP servers on or off is {NOT_YET}",
}
MODE_NOTES: dict[FeedMode, str] = {
    "attach": "with --attach the proxy runs in another process, so this dashboard cannot change its traffic",
    "demo": "the demo replays a recording",
    "live": "",
}


def unavailable_reason(action: str, mode: FeedMode) -> str | None:
    """Why `action` cannot run now (None when it can)."""
    reason = LATER_ACTIONS.get(action)
    if reason is None:
        return None
    note = MODE_NOTES.get(mode, "")
    return f"{reason}; {note}" if note else reason


# Binding ids whose key, when pressed while greyed out, shows the reason instead of doing nothing.
EXPLAINED_BINDINGS: dict[str, str] = {
    "compact": "compact",
    "restart_server": "restart_server",
    "transforms": "transforms",
    "mcp_toggle": "toggle_server",
}
