"""Small modal dialogs: a confirmation that defaults to Cancel, and a pick-one list."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option

from tui.core.terminal_text import printable, printable_lines


class ConfirmDialog(ModalScreen[bool]):
    """Ask before acting; Cancel has the focus, so enter right away cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="dialog_cancel")]

    def __init__(self, title: str, body: str, confirm: str, *, variant: str = "warning") -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.body = body
        self.confirm = confirm
        self.variant = variant

    def compose(self) -> ComposeResult:
        """Text, then Cancel and the action."""
        with Vertical(id="dialog-box"):
            yield Static(Text(printable_lines(self.body)), id="dialog-body")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm, id="confirm", variant=self.variant)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        """Title; focus Cancel."""
        self.query_one("#dialog-box").border_title = self.title_text
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Answer with the button."""
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        """Escape cancels."""
        self.dismiss(False)


class PickDialog(ModalScreen[str | None]):
    """Pick one of several choices (value, label); escape answers None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="pick_cancel")]

    def __init__(self, title: str, note: str, choices: Sequence[tuple[str, str]]) -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.note = note
        self.choices = tuple(choices)

    def compose(self) -> ComposeResult:
        """Note and list."""
        with Vertical(id="dialog-box"):
            yield Static(Text(printable_lines(self.note)), id="dialog-body")
            yield OptionList(
                *(Option(Text(printable(label)), id=value) for value, label in self.choices), id="pick-list"
            )
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        """Title; focus the list."""
        self.query_one("#dialog-box").border_title = self.title_text
        self.query_one(OptionList).focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        """The chosen value."""
        self.dismiss(event.option.id)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Cancel."""
        self.dismiss(None)

    def action_cancel(self) -> None:
        """Escape cancels."""
        self.dismiss(None)
