"""The `?` screen: every key, what it does, and why a greyed-out one cannot run now."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.ui.availability import ActionContext
from tui.ui.keys import KEYS, REMAPPABLE_IDS, shown_key


def help_table(context: ActionContext, keymap: dict[str, str]) -> Table:
    """Key, action, state; remapped keys come from the keymap."""
    table = Table(box=None, expand=True, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("key", no_wrap=True)
    table.add_column("does")
    for key in KEYS:
        shown = shown_key(key, keymap)
        reason = key.rule(context) if key.rule is not None else None
        if reason is None:
            table.add_row(Text(shown, style="bold"), key.help)
        else:
            table.add_row(
                Text(shown, style="dim"), Text.assemble((key.help, "dim"), "\n", (reason, "italic dim"))
            )
    return table


def remap_note() -> Text:
    """How to remap keys, naming every binding id (plain text: "[keys]" is not markup)."""
    return Text(
        'Keys are remapped in the [keys] section of config.toml: binding id = "key" '
        f"(ids: {', '.join(REMAPPABLE_IDS)})."
    )


class HelpScreen(ModalScreen[None]):
    """Modal list of keys."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close", id="help_close"),
        Binding("question_mark", "dismiss", "Close", show=False, id="help_close2"),
        Binding("q", "dismiss", "Close", show=False, id="help_close3"),
    ]

    def __init__(self, context: ActionContext, keymap: dict[str, str]) -> None:
        super().__init__()
        self.context = context
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        """One scrollable table."""
        with VerticalScroll(id="help"):
            yield Static(help_table(self.context, self.keymap), id="help-keys")
            yield Static(remap_note(), id="help-note")

    def on_mount(self) -> None:
        """Title."""
        self.query_one("#help").border_title = "keys · escape closes"

    def action_dismiss(self) -> None:  # type: ignore[override]
        """Close."""
        self.dismiss(None)
