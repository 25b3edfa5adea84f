"""The `?` screen: every key, what it does, and why a greyed-out one cannot run now."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui.ui.availability import ActionContext, unavailable_reason

# (binding id, default key, what it does, action name checked for availability)
KEY_HELP: tuple[tuple[str, str, str, str], ...] = (
    ("detail", "enter", "open the detail of the highlighted request", "open_detail"),
    ("", "tab / shift+tab", "move focus between the requests table and the pane", "focus"),
    ("", "↑ ↓ pgup pgdn home end", "move in the table, tree or log", "move"),
    ("filter", "/", "filter the requests (or the log when the log pane is shown)", "filter"),
    ("follow", "f", "follow new traffic on/off (table cursor on the newest row, log at its end)", "follow"),
    ("log", "l", "show/hide the llama-server log pane", "pane"),
    ("slots", "s", "show/hide slots, prompt progress and checkpoints", "pane"),
    ("mcp", "m", "show/hide the MCP servers of the selected request", "pane"),
    ("compact", "c", "compact the agent's context (tmux pane /compact, or in the proxy)", "compact"),
    ("compact_undo", "u", "undo the proxy compaction (while one is active)", "compact_undo"),
    ("restart_server", "r", "restart llama-server with a new ctx_size / parallel", "restart_server"),
    ("transforms", "t", "request transforms: on/off, tokens saved, prose sample", "transforms"),
    ("mcp_toggle", "space", "switch the highlighted MCP server on/off (MCP pane)", "toggle_server"),
    ("report", "g", "report: this session's and today's tokens, reuse, latency and cloud cost", "report"),
    ("detail_body", "b", "raw request body (detail screen)", "body"),
    ("detail_back", "escape", "back (detail screen, filter, help)", "back"),
    ("help", "?", "this help", "help"),
    ("", "ctrl+p", "command palette: the commands valid right now", "palette"),
    ("quit", "q", "quit", "quit"),
)


def help_table(context: ActionContext, keymap: dict[str, str]) -> Table:
    """Key, action, state; remapped keys come from the keymap."""
    table = Table(box=None, expand=True, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("key", no_wrap=True)
    table.add_column("does")
    for binding_id, key, does, action in KEY_HELP:
        shown = keymap.get(binding_id, key) if binding_id else key
        reason = unavailable_reason(action, context)
        if reason is None:
            table.add_row(Text(shown, style="bold"), does)
        else:
            table.add_row(
                Text(shown, style="dim"), Text.assemble((does, "dim"), "\n", (reason, "italic dim"))
            )
    return table


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
            yield Static(
                'Keys are remapped in the [keys] section of config.toml: binding id = "key" '
                "(ids: detail, filter, follow, log, slots, mcp, compact, compact_undo, restart_server, "
                "transforms, mcp_toggle, help, quit).",
                id="help-note",
            )

    def on_mount(self) -> None:
        """Title."""
        self.query_one("#help").border_title = "keys · escape closes"

    def action_dismiss(self) -> None:  # type: ignore[override]
        """Close."""
        self.dismiss(None)
