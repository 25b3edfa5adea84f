"""The dashboard's keys, declared once: bindings, greyed-key reasons, the help screen and the palette."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.binding import Binding

from tui.ui.availability import (
    ActionContext,
    Rule,
    needs_compaction,
    needs_model,
    needs_proxy,
    not_in_demo,
)

Owner = Literal["app", "main", "requests", "mcp", "detail", "transforms", ""]


@dataclass(frozen=True)
class KeyAction:
    """One key: binding id ([keys] remaps it), default key, Textual action, where it lives, what it does."""

    id: str
    key: str
    action: str
    owner: Owner  # "" : shown in help only (Textual's own navigation keys)
    label: str
    help: str
    footer: bool = True
    rule: Rule | None = None  # why it cannot run now; the key stays bound and explains when pressed
    command: str = ""  # the command-palette name ("" : not in the palette)
    shown_key: str = ""  # how help writes the key when not the key itself

    @property
    def name(self) -> str:
        """The action's name without arguments (what check_action receives)."""
        return self.action.split("(", 1)[0].rsplit(".", 1)[-1]


KEYS: tuple[KeyAction, ...] = (
    KeyAction("detail", "enter", "open_detail", "requests", "Detail",
              "open the detail of the highlighted request", command="Open the selected request"),
    KeyAction("", "tab", "", "", "", "move focus between the requests table and the pane",
              shown_key="tab / shift+tab"),
    KeyAction("", "up", "", "", "", "move in the table, tree or log", shown_key="↑ ↓ pgup pgdn home end"),
    KeyAction("filter", "slash", "filter", "main", "Filter",
              "filter the requests (or the log when the log pane is shown)", footer=False,
              command="Filter requests or log", shown_key="/"),
    KeyAction("follow", "f", "toggle_follow", "main", "Follow",
              "follow new traffic on/off (table cursor on the newest row, log at its end)", footer=False,
              command="Follow new traffic"),
    KeyAction("log", "l", "pane('log')", "main", "Log", "show/hide the llama-server log pane",
              command="log pane"),
    KeyAction("slots", "s", "pane('slots')", "main", "Slots",
              "show/hide slots, prompt progress and checkpoints", command="slots and checkpoints"),
    KeyAction("mcp", "m", "pane('mcp')", "main", "MCP", "show/hide the MCP servers of the selected request",
              command="MCP servers"),
    KeyAction("compact", "c", "compact", "main", "Compact",
              "compact the agent's context (tmux pane /compact, or in the proxy)", rule=not_in_demo,
              command="Compact the agent's context"),
    KeyAction("compact_undo", "u", "compact_undo", "main", "Undo compact",
              "undo the proxy compaction (while one is active)", rule=needs_compaction,
              command="Undo the proxy compaction"),
    KeyAction("restart_server", "r", "restart_server", "main", "Restart",
              "restart llama-server with a new ctx_size / parallel", rule=needs_model,
              command="Restart llama-server"),
    KeyAction("transforms", "t", "transforms", "main", "Transforms",
              "request transforms: on/off, tokens saved, prose sample", rule=needs_proxy,
              command="Request transforms"),
    KeyAction("mcp_toggle", "space", "toggle_server", "mcp", "Toggle server",
              "switch the highlighted MCP server on/off (MCP pane)", rule=needs_proxy,
              command="Switch MCP server on/off"),
    KeyAction("report", "g", "report", "main", "Report",
              "report: this session's and today's tokens, reuse, latency and cloud cost", footer=False,
              command="Report: this session and today"),
    KeyAction("findings", "i", "findings", "main", "Findings",
              "findings: what to change in the selected request's session and what it saves", footer=False,
              command="Findings: what to change in this session"),
    KeyAction("detail_back", "escape", "app.pop_screen", "detail", "Back",
              "back (detail screen, filter, help)"),
    KeyAction("detail_body", "b", "toggle_body", "detail", "Raw body", "raw request body (detail screen)"),
    KeyAction("transforms_toggle", "space", "toggle_transform", "transforms", "Toggle",
              "switch the highlighted transform on/off (transforms screen)"),
    KeyAction("help", "question_mark", "help", "app", "Help", "this help",
              command="Keys and help", shown_key="?"),
    KeyAction("", "ctrl+p", "", "", "", "command palette: the commands valid right now"),
    KeyAction("quit", "q", "quit", "app", "Quit", "quit"),
)

REMAPPABLE_IDS = tuple(k.id for k in KEYS if k.id)


def bindings(owner: Owner) -> list[Binding | tuple[str, str] | tuple[str, str, str]]:
    """The owner's bindings; a key with a rule gets a hidden second binding that says why it is greyed."""
    out: list[Binding | tuple[str, str] | tuple[str, str, str]] = []
    for key in KEYS:
        if key.owner != owner:
            continue
        out.append(Binding(key.key, key.action, key.label, show=key.footer, id=key.id))
        if key.rule is not None:
            out.append(Binding(key.key, f"screen.why('{key.name}')", show=False, id=f"{key.id}.why"))
    return out


def keymap_for(keys: dict[str, str]) -> dict[str, str]:
    """The user's [keys] plus the hidden "why" bindings, which follow the keys they explain."""
    keymap = dict(keys)
    for key in KEYS:
        if key.rule is not None and key.id in keys:
            keymap[f"{key.id}.why"] = keys[key.id]
    return keymap


def shown_key(key: KeyAction, keymap: dict[str, str]) -> str:
    """The key as the user presses it (remapped through [keys])."""
    if key.id in keymap:
        return keymap[key.id]
    return key.shown_key or key.key


def unavailable_reason(action: str, context: ActionContext) -> str | None:
    """Why the action named `action` cannot run now (None when it can)."""
    for key in KEYS:
        if key.name == action and key.rule is not None:
            return key.rule(context)
    return None
