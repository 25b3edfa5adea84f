"""When an action can run: the context it depends on, and the rules the keys table names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tui.core.feed.control import ControlSnapshot
from tui.core.feed.updates import FeedMode

DEMO_REASON = "demo: replaying a recording, nothing to act on"


@dataclass(frozen=True)
class ActionContext:
    """What availability depends on: the feed's mode, the proxy's control answer, the server config."""

    mode: FeedMode
    control: ControlSnapshot | None = None
    proxy_address: str = ""
    server_model: str = "set"
    router: bool = False  # a router-mode server: `r` acts on its models, no [server] model needed


Rule = Callable[[ActionContext], str | None]
"""Why an action cannot run in a context (None: it can)."""


def _no_proxy(context: ActionContext) -> str | None:
    control = context.control
    if control is not None and control.answers:
        return None
    address = control.address if control is not None else context.proxy_address
    if context.mode == "remote":
        return f"the serve host's proxy does not answer at {address} — run `ctxbudget serve --proxy` there"
    if context.mode == "live":
        return f"the dashboard's proxy does not answer at {address} (see its status in the notifications)"
    return f"no proxy answers at {address} — start `ctxbudget proxy`"


def not_in_demo(context: ActionContext) -> str | None:
    """Acting on a recording makes no sense (pane-mode compaction needs nothing else: its dialog explains)."""
    return DEMO_REASON if context.mode == "demo" else None


def needs_model(context: ActionContext) -> str | None:
    """A restart starts the configured [server] model (a router's models need none)."""
    if context.mode == "demo":
        return DEMO_REASON
    if not context.server_model and not context.router:
        return "set [server] model in config.toml so ctxbudget can start llama-server"
    return None


def needs_proxy(context: ActionContext) -> str | None:
    """The action goes through the proxy's control API."""
    return not_in_demo(context) or _no_proxy(context)


def needs_compaction(context: ActionContext) -> str | None:
    """Undo needs an active proxy compaction."""
    reason = needs_proxy(context)
    if reason is None and context.control is not None and not context.control.compactions:
        return "no active compaction to undo"
    return reason
