"""The transforms screen: each request transform, on/off, what it does, tokens saved; the prose sample."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tui.core.control.client import ControlClient, ControlError
from tui.core.feed.control import ControlSnapshot, TransformRow, fetch_control, switch_prefix_note
from tui.core.transforms.prose import prose_sample
from tui.core.transforms.registry import DESCRIPTIONS, TRANSFORM_ORDER
from tui.core.transforms.settings import TransformSettings
from tui.ui.format import grouped
from tui.ui.keys import bindings
from tui.ui.screens.dialogs import ConfirmDialog

BodyLoader = Callable[[], tuple[bytes | None, str]]


class SwitchJudged(Message):
    """What a switch would do to the prefix was worked out: ask the user."""

    def __init__(self, name: str, enabled: bool, note: str) -> None:
        super().__init__()
        self.name = name
        self.enabled = enabled
        self.note = note


class TransformSwitched(Message):
    """The control API answered a switch (or failed: error set)."""

    def __init__(self, answer: dict[str, object], snapshot: ControlSnapshot | None, error: str = "") -> None:
        super().__init__()
        self.answer = answer
        self.snapshot = snapshot
        self.error = error


def reprocess_note(answer: dict[str, object]) -> str:
    """What the switch does to the ongoing conversation, from the API's answer."""
    reprocess = answer.get("reprocess")
    if not answer.get("changed"):
        return "no change"
    if isinstance(reprocess, dict):
        if reprocess.get("reprocesses"):
            return f"the next request re-processes from {reprocess.get('where') or 'the changed part'}"
        return "the prompt prefix is unchanged: no re-processing"
    return "applies from the next request"


class TransformsScreen(ModalScreen[None]):
    """Switch transforms through the proxy's control API (space), after a warning about re-processing."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="transforms_close"),
        *bindings("transforms"),
    ]

    def __init__(
        self,
        snapshot: ControlSnapshot,
        client: ControlClient,
        *,
        latest_body: BodyLoader = lambda: (None, ""),
        transform_settings: TransformSettings | None = None,
    ) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.client = client
        self.latest_body = latest_body  # blocking: called from a worker thread
        self.transform_settings = transform_settings or TransformSettings()

    def compose(self) -> ComposeResult:
        """Table, then the prose compression sample before/after."""
        before, after = prose_sample()
        with Vertical(id="transforms-box"):
            yield DataTable[Text | str](id="transforms-table", cursor_type="row")
            yield Static("", id="transforms-total")
            with Horizontal(id="transforms-sample"):
                yield Static(Text.assemble(("compress_prose, before\n", "bold"), before))
                yield Static(Text.assemble(("after\n", "bold"), after))

    def on_mount(self) -> None:
        """Columns, rows, title."""
        box = self.query_one("#transforms-box")
        box.border_title = "transforms · space toggles · escape closes"
        table = self.query_one(DataTable)
        for key, label in (("name", "transform"), ("state", "state"), ("saved", "saved"), ("does", "does")):
            table.add_column(label, key=key)
        self.show(self.snapshot)
        table.focus()

    def row(self, name: str) -> TransformRow:
        """The snapshot's row for one transform."""
        return next((t for t in self.snapshot.transforms if t.name == name), TransformRow(name, False, 0))

    def show(self, snapshot: ControlSnapshot) -> None:
        """Render the rows (keeps the cursor)."""
        self.snapshot = snapshot
        table: DataTable[Text | str] = self.query_one(DataTable)
        cursor = table.cursor_row
        table.clear()
        for name in TRANSFORM_ORDER:
            row = self.row(name)
            table.add_row(
                name,
                Text("on", style="bold") if row.enabled else Text("off", style="dim"),
                Text(grouped(row.saved_tokens), justify="right"),
                DESCRIPTIONS.get(name, ""),
                key=name,
            )
        table.move_cursor(row=max(0, min(cursor, len(TRANSFORM_ORDER) - 1)), animate=False)
        self.query_one("#transforms-total", Static).update(
            Text(f"saved by transforms in this proxy run: {grouped(snapshot.transform_saved_tokens)} tokens")
        )

    def selected_name(self) -> str:
        """The transform under the cursor."""
        return TRANSFORM_ORDER[max(0, self.query_one(DataTable).cursor_row)]

    def action_toggle_transform(self) -> None:
        """Judge what the switch does to the conversation's prefix, then confirm (default Cancel)."""
        name = self.selected_name()
        self._judge_switch(name, not self.row(name).enabled)

    @work(
        exclusive=True, thread=True, group="judge", exit_on_error=False, description="judge transform switch"
    )
    def _judge_switch(self, name: str, enabled: bool) -> None:
        before = [t.name for t in self.snapshot.transforms if t.enabled]
        after = [n for n in TRANSFORM_ORDER if (n in before and n != name) or (n == name and enabled)]
        body, dialect = self.latest_body()
        note = switch_prefix_note(body, dialect, self.transform_settings, before, after)
        if not note:
            note = (
                "This may change the prompt prefix of the ongoing conversation: llama-server then "
                "re-processes it once on the next request (no stored request body to check exactly)."
                if self.snapshot.requests_seen
                else "No request went through the proxy yet: nothing is re-processed."
            )
        self.post_message(SwitchJudged(name, enabled, note))

    def on_switch_judged(self, message: SwitchJudged) -> None:
        """Ask before switching."""
        verb = "on" if message.enabled else "off"
        self.app.push_screen(
            ConfirmDialog(
                f"transform {message.name}",
                f"Switch {message.name} {verb}?\n{message.note}",
                f"Switch {verb}",
            ),
            lambda ok: self._confirmed(bool(ok), message.name, message.enabled),
        )

    def _confirmed(self, ok: bool, name: str, enabled: bool) -> None:
        if ok:
            self._switch(name, enabled)

    @work(exclusive=True, thread=True, group="switch", exit_on_error=False, description="switch transform")
    def _switch(self, name: str, enabled: bool) -> None:
        try:
            answer = self.client.set_transform(name, enabled)
        except ControlError as exc:
            self.post_message(TransformSwitched({}, None, str(exc)))
            return
        self.post_message(TransformSwitched(answer, fetch_control(self.client)))

    def on_transform_switched(self, message: TransformSwitched) -> None:
        """Show the new state and what it does to the conversation."""
        if message.error:
            self.notify(message.error, title="transforms", severity="error", timeout=8)
            return
        if message.snapshot is not None and message.snapshot.answers:
            self.show(message.snapshot)
        state = "on" if message.answer.get("enabled") else "off"
        self.notify(
            f"{message.answer.get('name')} {state}: {reprocess_note(message.answer)}", title="transforms"
        )

    def action_dismiss(self) -> None:  # type: ignore[override]
        """Close."""
        self.dismiss(None)
