"""Where a remote feed stream left off, and which of its rows are new (resume without loss or repeats)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

FLYING_LIMIT = 200  # serve takes at most this many (app.FLYING_LIMIT)


@dataclass
class FeedCursor:
    """The serve run (epoch), the last event handled and the highest journal row id held.

    A stream that does not resume first replays journal rows, the log ring and the latest states with ids up
    to hello's; only once a later event (or a ping) shows that replay complete does the cursor take the new
    epoch, so a link lost halfway through a replay asks for the rest again instead of skipping it.
    """

    epoch: str | None = None
    last_event: int = 0
    rows_after: int = -1
    _pending: tuple[str, int] | None = None  # a replaying stream's (epoch, hello id)

    def query(self, flying: list[int] | None = None) -> dict[str, str]:
        """The feed request's parameters: a first connection sends no epoch and rows_after=-1; `flying`
        names the rows shown as in flight, whose final rows a catch-up must bring."""
        params = {"rows_after": str(self.rows_after)}
        if self.epoch is not None:
            params["epoch"] = self.epoch
            params["after"] = str(self.last_event)
        if flying:
            params["flying"] = ",".join(str(row_id) for row_id in flying[-FLYING_LIMIT:])
        return params

    def hello(self, event_id: int, data: dict[str, Any]) -> bool:
        """Take the stream's hello; whether it resumes where the last stream stopped."""
        epoch = str(data.get("epoch") or "")
        resumed = bool(data.get("resumed")) and self.epoch is not None and epoch == self.epoch
        self._pending = None if resumed else (epoch, int(data.get("last_id", event_id)))
        return resumed

    def event(self, event_id: int, kind: str) -> None:
        """Note a handled event."""
        pending = self._pending
        if pending is None:
            self.last_event = max(self.last_event, event_id)
        elif event_id > pending[1] or kind == "ping":
            self.epoch, self._pending = pending[0], None
            self.last_event = max(pending[1], event_id)

    def new_rows(self, records: list[dict[str, Any]], flying: Collection[int] = ()) -> list[dict[str, Any]]:
        """The records above rows_after (each row once, whatever the server resends), plus the final rows
        of those shown as in flight (`flying`, from a `replaced` event); rows_after moves up."""
        fresh = [r for r in records if int(r.get("id") or 0) > self.rows_after or r.get("id") in flying]
        if fresh:
            self.rows_after = max(self.rows_after, *(int(r.get("id") or 0) for r in fresh))
        return fresh
