"""The restart dialog: current ctx_size and parallel, editable, with Restart / Cancel (default Cancel)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.validation import Integer
from textual.widgets import Button, Input, Label, Static

MAX_CTX = 16 * 1024 * 1024
MAX_PARALLEL = 256


@dataclass(frozen=True)
class RestartRequest:
    """The sizes to restart with (total context over all slots, and the slot count)."""

    ctx_size: int
    parallel: int


class RestartDialog(ModalScreen[RestartRequest | None]):
    """Edit ctx_size and parallel; Restart only with valid numbers."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="restart_cancel")]

    def __init__(self, *, ctx_size: int, parallel: int, note: str) -> None:
        super().__init__(classes="dialog")
        self.ctx_size = ctx_size
        self.parallel = parallel
        self.note = note

    def compose(self) -> ComposeResult:
        """Two validated inputs and the buttons."""
        with Vertical(id="dialog-box"):
            yield Static(Text(self.note), id="dialog-body")
            with Horizontal(classes="field"):
                yield Label("ctx_size (all slots)", classes="field-label")
                yield Input(
                    str(self.ctx_size),
                    type="integer",
                    validators=[Integer(minimum=256, maximum=MAX_CTX)],
                    id="ctx-size",
                )
            with Horizontal(classes="field"):
                yield Label("parallel (slots)", classes="field-label")
                yield Input(
                    str(self.parallel),
                    type="integer",
                    validators=[Integer(minimum=1, maximum=MAX_PARALLEL)],
                    id="parallel",
                )
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Restart", id="confirm", variant="error")

    def on_mount(self) -> None:
        """Title; Cancel has the focus."""
        self.query_one("#dialog-box").border_title = "restart llama-server"
        self.query_one("#cancel", Button).focus()

    def request(self) -> RestartRequest | None:
        """The edited sizes, or None (with the problem shown) when one is not valid."""
        problems: list[str] = []
        values: list[int] = []
        for input_id, name in (("#ctx-size", "ctx_size"), ("#parallel", "parallel")):
            widget = self.query_one(input_id, Input)
            result = widget.validate(widget.value)
            if result is not None and not result.is_valid:
                problems.append(f"{name}: {'; '.join(result.failure_descriptions)}")
            else:
                values.append(int(widget.value))
        self.query_one("#dialog-error", Static).update(Text("\n".join(problems)))
        if problems:
            return None
        return RestartRequest(values[0], values[1])

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Restart with valid sizes, or cancel."""
        if event.button.id != "confirm":
            self.dismiss(None)
            return
        request = self.request()
        if request is not None:
            self.dismiss(request)

    def action_cancel(self) -> None:
        """Escape cancels."""
        self.dismiss(None)
