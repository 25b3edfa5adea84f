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
