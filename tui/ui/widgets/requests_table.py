"""The requests table: newest first, follows new traffic until the user moves the cursor away."""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable

from rich.text import Text
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from tui.core.feed.flights import FlightProgress
from tui.core.records import RequestRecord
from tui.core.terminal_text import printable
from tui.ui.format import clock, millis, percent, rate, tokens
from tui.ui.keys import bindings

# key, label, width: fixed widths keep adding rows cheap (no per-cell measuring of every row).
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("time", "time", 8),
    ("prompt", "prompt", 6),
    ("reused", "reuse", 5),
    ("new", "new", 5),
    ("output", "out", 5),
    ("pp", "pp t/s", 6),
    ("tg", "tg t/s", 6),
    ("ttfb", "TTFB", 6),
    ("status", "st", 3),
    ("session", "session", 14),
    ("model", "model", 18),
    ("id", "#", 6),
)
# Shown once a row with a user arrives (team mode); single-user tables never get it.
USER_COLUMN: tuple[str, str, int] = ("user", "user", 10)
MAX_ROWS = 500


def record_matches(record: RequestRecord, query: str) -> bool:
    """Filter terms: plain words match session/model/kind/status/path/user; `status:4`, `user:alice` too."""
    for term in query.lower().split():
        field, sep, value = term.partition(":")
        if sep:
            haystack = {
                "status": str(record.status),
                "kind": record.kind,
                "session": record.session_id,
                "model": record.model,
                "user": record.user,
            }.get(field, "")
            if not haystack.lower().startswith(value):
                return False
        elif (
            term
            not in f"{record.session_id} {record.model} {record.kind} {record.status} {record.path} "
            f"{record.user}".lower()
        ):
            return False
    return True


class RequestsTable(DataTable[Text | str | int]):
    """Journal rows; `following` keeps the cursor on the newest row."""

    BINDINGS = bindings("requests")

    class Selected(Message):
        """The highlighted request changed (record None: table empty)."""

        def __init__(self, record: RequestRecord | None, following: bool) -> None:
            super().__init__()
            self.record = record
            self.following = following

    class OpenDetail(Message):
        """The user asked for the detail of a request."""

        def __init__(self, record: RequestRecord) -> None:
            super().__init__()
            self.record = record

    def __init__(self, *, tz: dt.tzinfo | None = None, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        self.tz = tz
        self.records: deque[RequestRecord] = deque(maxlen=MAX_ROWS)
        self.by_id: dict[int, RequestRecord] = {}
        self.following = True
        self.filter_text = ""
        self.columns_shown: list[tuple[str, str, int]] = list(COLUMNS)
        self.flights: dict[int, FlightProgress] = {}

    def on_mount(self) -> None:
        """Columns."""
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    def _show_user_column(self) -> None:
        """Team mode: add the user column (rows shown so far get theirs filled in)."""
        key, label, width = USER_COLUMN
        self.columns_shown.append(USER_COLUMN)
        self.add_column(label, key=key, width=width, default="")
        for record in self.records:
            if str(record.id) in self.rows:
                self.update_cell(str(record.id), key, self._user_cell(record))

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # Every column has a fixed width and every row one line, so the new rows need no measuring;
        # DataTable would measure each new cell anyway (~40 ms for the start-up backlog).
        super()._update_dimensions(())

    # --- data --------------------------------------------------------------------------------------

    def add_records(self, records: Iterable[RequestRecord]) -> None:
        """Add rows (newest first), drop the oldest beyond MAX_ROWS, keep following."""
        added = False
        selected = None if self.following else self.record_at_cursor()
        for record in records:
            if record.id in self.by_id:
                continue
            if record.user and USER_COLUMN not in self.columns_shown:
                self._show_user_column()
            if len(self.records) == self.records.maxlen:
                oldest = self.records[0]
                self.by_id.pop(oldest.id, None)
                if str(oldest.id) in self.rows:
                    self.remove_row(str(oldest.id))
            self.records.append(record)
            self.by_id[record.id] = record
            if record_matches(record, self.filter_text):
                self.add_row(*self._cells(record), key=str(record.id))
                added = True
        if added:
            self.sort("id", reverse=True)
            # Sized now rather than when the table next idles, so the frame being built shows the rows.
            self._update_dimensions(())
            if self.following:
                self._go_newest()
            elif selected is not None and str(selected.id) in self.rows:
                self.move_cursor(row=self.get_row_index(str(selected.id)), animate=False, scroll=False)

    def replace_records(self, records: Iterable[RequestRecord]) -> None:
        """Rows shown before, now with more facts (speeds from the log): update their cells in place."""
        for record in records:
            if record.id not in self.by_id:
                continue
            self.by_id[record.id] = record
            for index, old in enumerate(self.records):
                if old.id == record.id:
                    self.records[index] = record
                    break
            if str(record.id) in self.rows:
                for (key, _, _), value in zip(self.columns_shown, self._cells(record), strict=True):
                    self.update_cell(str(record.id), key, value)

    def show_flights(self, flights: Iterable[FlightProgress]) -> None:
        """Progress of the requests in flight: their status cells show it."""
        self.flights = {f.record_id: f for f in flights}
        for record_id in self.flights:
            record = self.by_id.get(record_id)
            if record is not None and record.in_flight and str(record_id) in self.rows:
                self.update_cell(str(record_id), "status", self._status(record))

    def set_query(self, query: str) -> None:
        """Show only rows matching the filter."""
        self.filter_text = query.strip()
        self.clear()
        for record in self.records:
            if record_matches(record, self.filter_text):
                self.add_row(*self._cells(record), key=str(record.id))
        self.sort("id", reverse=True)
        self.following = True
        self._go_newest()
        if self.row_count == 0:
            self.post_message(self.Selected(None, True))

    def _cells(self, record: RequestRecord) -> list[Text | str | int]:
        cells = self._base_cells(record)
        if len(self.columns_shown) > len(COLUMNS):
            cells.append(self._user_cell(record))
        return cells

    def _base_cells(self, record: RequestRecord) -> list[Text | str | int]:
        usage = record.usage
        new = None
        if usage.prompt_tokens is not None and usage.cached_tokens is not None:
            new = usage.prompt_tokens - usage.cached_tokens
        status = self._status(record)
        return [
            clock(record.ts, self.tz),
            # "~": the row's own count (no server usage: the request failed or was cut off).
            Text(
                ("" if usage.prompt_tokens is not None or record.prompt_tokens is None else "~")
                + tokens(record.prompt_tokens),
                justify="right",
            ),
            Text(percent(record.reused_fraction), justify="right"),
            Text(tokens(new), justify="right"),
            Text(tokens(usage.output_tokens), justify="right"),
            Text(rate(usage.prompt_per_second), justify="right"),
            Text(rate(usage.gen_per_second), justify="right"),
            Text(millis(record.ttfb_ms), justify="right"),
            status,
            Text(
                printable(record.session_id[:8] or "–") + ("" if record.kind == "main" else f" {record.kind}")
            ),
            Text(printable(record.model.rsplit("/", 1)[-1][:18] or "–")),
            record.id,
        ]

    @staticmethod
    def _user_cell(record: RequestRecord) -> Text:
        return Text(printable(record.user[:10] or "–"))

    def _status(self, record: RequestRecord) -> Text:
        if record.in_flight:
            flight = self.flights.get(record.id)
            return Text(flight.short if flight is not None else "…", style="bold yellow")
        return Text(
            str(record.status or "–"), style="bold red" if record.status >= 400 or record.error else ""
        )

    # --- cursor and follow ------------------------------------------------------------------------

    def _go_newest(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False, scroll=True)
            self._announce(self.coordinate_to_cell_key(Coordinate(0, 0)).row_key.value)

    def record_at_cursor(self) -> RequestRecord | None:
        """The highlighted record."""
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.by_id.get(int(key)) if key is not None else None

    def set_following(self, following: bool) -> None:
        """Turn follow on (jumps to the newest row) or off."""
        self.following = following
        if following:
            self._go_newest()
        else:
            self.post_message(self.Selected(self.record_at_cursor(), False))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """A user move away from the newest row stops following; back on it resumes."""
        if event.data_table is not self:
            return
        self.following = self.cursor_row == 0
        record = self.record_at_cursor()
        self._announce(str(record.id) if record else None)

    def _announce(self, key: str | None) -> None:
        record = self.by_id.get(int(key)) if key is not None else None
        self.post_message(self.Selected(record, self.following))

    def action_open_detail(self) -> None:
        """Open the detail screen of the highlighted request."""
        record = self.record_at_cursor()
        if record is not None:
            self.post_message(self.OpenDetail(record))
