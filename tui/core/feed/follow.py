"""Which request the budget shows while it follows new traffic."""

from __future__ import annotations

from collections.abc import Iterable

from tui.core.records import RequestRecord


def budget_record(rows: Iterable[RequestRecord], newest: RequestRecord) -> RequestRecord:
    """The newest main request of the newest row's session: title and other side requests never take
    over the budget; the newest row itself when its session has no main request yet."""
    if newest.kind == "main":
        return newest
    mains = [r for r in rows if r.kind == "main" and r.session_id == newest.session_id and r.id <= newest.id]
    return max(mains, key=lambda r: r.id) if mains else newest


def mcp_record(rows: Iterable[RequestRecord], newest: RequestRecord) -> RequestRecord:
    """The request the MCP pane shows while following: the newest analysed main request of the newest
    row's session (a side request, or one still in flight, names no MCP servers and would empty the pane
    under the user's key); the budget's choice when there is none."""
    rows = list(rows)
    mains = [
        r for r in rows
        if r.kind == "main" and r.session_id == newest.session_id and r.id <= newest.id
        and r.anatomy is not None and not r.in_flight
    ]  # fmt: skip
    return max(mains, key=lambda r: r.id) if mains else budget_record(rows, newest)
