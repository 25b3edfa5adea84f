"""Which actions can run now, and the plain reason shown when one cannot."""

from __future__ import annotations

from dataclasses import dataclass

from tui.core.feed.control import ControlSnapshot
from tui.core.feed.updates import FeedMode

DEMO_REASON = "demo: replaying a recording, nothing to act on"
ACTING_ACTIONS = ("compact", "compact_undo", "restart_server", "transforms", "toggle_server")


@dataclass(frozen=True)
class ActionContext:
    """What availability depends on: the feed's mode, the proxy's control answer, the server config."""

    mode: FeedMode
    control: ControlSnapshot | None = None
    proxy_address: str = ""
    server_model: str = "set"


def _no_proxy(context: ActionContext) -> str | None:
    control = context.control
    if control is not None and control.answers:
        return None
    address = control.address if control is not None else context.proxy_address
    if context.mode == "live":
        return f"the dashboard's proxy does not answer at {address} (see its status in the notifications)"
    return f"no proxy answers at {address} — start `ctxbudget proxy`"


def unavailable_reason(action: str, context: ActionContext) -> str | None:
    """Why `action` cannot run now (None when it can)."""
    if action not in ACTING_ACTIONS:
        return None
    if context.mode == "demo":
        return DEMO_REASON
    if action == "restart_server":
        if not context.server_model:
            return "set [server] model in config.toml so ctxbudget can start llama-server"
        return None
    if action == "compact":
        return None  # pane mode needs no proxy; the dialog explains what each mode needs
    reason = _no_proxy(context)
    if reason is not None:
        return reason
    if action == "compact_undo" and context.control is not None and not context.control.compactions:
        return "no active compaction to undo"
    return None


# Binding ids whose key, when pressed while greyed out, shows the reason instead of doing nothing.
EXPLAINED_BINDINGS: dict[str, str] = {
    "compact": "compact",
    "compact_undo": "compact_undo",
    "restart_server": "restart_server",
    "transforms": "transforms",
    "mcp_toggle": "toggle_server",
}
