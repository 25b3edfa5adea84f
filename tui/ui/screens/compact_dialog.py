"""The compaction dialog: pane mode (/compact typed into the agent's tmux pane) or proxy mode, and a focus."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, RadioButton, RadioSet, Static

from tui.core.terminal_text import printable_lines

PANE_LABEL = "pane: type /compact into the agent's tmux pane"
PROXY_LABEL = "proxy: summarise older turns, rewrite later requests"
FOCUS_PLACEHOLDER = "focus (optional): what the summary must keep, e.g. the failing test in api.py"


@dataclass(frozen=True)
class CompactChoice:
    """What the dialog answers: the mode and the optional focus text."""

    mode: str  # "pane" | "proxy"
    focus: str = ""


class ChoiceButton(RadioButton):
    """A radio button whose glyph says on (●) or off (○): Textual's differs only in colour."""

    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = "●" if self.value else "○"  # read by the base class when it draws the glyph
        return super()._button


class CompactDialog(ModalScreen[CompactChoice | None]):
    """Answers a CompactChoice, or None (cancelled)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="compact_cancel")]

    def __init__(
        self,
        *,
        panes: int,
        pane_note: str,
        proxy_ok: bool,
        session: str,
        keep_turns: int,
        preferred: str = "pane",
    ) -> None:
        super().__init__(classes="dialog")
        self.preferred = preferred
        self.panes = panes
        self.pane_note = pane_note
        self.proxy_ok = proxy_ok
        self.session = session
        self.keep_turns = keep_turns

    def default_mode(self) -> str:
        """[compact] mode when it can act; pane when an agent runs in tmux or the proxy cannot compact."""
        if not self.proxy_ok:
            return "pane"
        return "proxy" if self.preferred == "proxy" or not self.panes else "pane"

    def compose(self) -> ComposeResult:
        """Modes, what each needs, Cancel and Compact."""
        mode = self.default_mode()
        proxy_note = (
            f"session {self.session or '(latest)'}, keeping the last {self.keep_turns} user turn(s)"
            if self.proxy_ok
            else "the proxy does not answer: proxy mode is not available"
        )
        with Vertical(id="dialog-box"):
            body = printable_lines(f"Compact the agent's context?\n· {self.pane_note}\n· {proxy_note}")
            yield Static(Text(body), id="dialog-body")
            with RadioSet(id="compact-mode"):
                yield ChoiceButton(PANE_LABEL, value=mode == "pane", id="mode-pane")
                yield ChoiceButton(
                    PROXY_LABEL, value=mode == "proxy", id="mode-proxy", disabled=not self.proxy_ok
                )
            # Pane mode types it after /compact; proxy mode puts it in the summary prompt.
            yield Input(placeholder=FOCUS_PLACEHOLDER, id="compact-focus")
            with Horizontal(id="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Compact", id="confirm", variant="warning")

    def on_mount(self) -> None:
        """Title; Cancel has the focus."""
        self.query_one("#dialog-box").border_title = "compact"
        # RadioSet highlights its first button whatever is pressed, so two options looked selected:
        # move the highlight onto the pressed one (its public action steps one button at a time).
        modes = self.query_one(RadioSet)
        for _ in range(max(modes.pressed_index, 0)):
            modes.action_next_button()
        self.query_one("#cancel", Button).focus()

    def chosen_mode(self) -> str:
        """The selected radio button's mode."""
        pressed = self.query_one(RadioSet).pressed_button
        return "proxy" if pressed is not None and pressed.id == "mode-proxy" else "pane"

    def choice(self) -> CompactChoice:
        """The chosen mode and the focus text (one line, spaces collapsed)."""
        focus = " ".join(self.query_one("#compact-focus", Input).value.split())
        return CompactChoice(self.chosen_mode(), focus)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Compact in the chosen mode, or cancel."""
        self.dismiss(self.choice() if event.button.id == "confirm" else None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the focus field moves to Compact (one more Enter compacts; Cancel stays a Tab away)."""
        event.stop()
        self.query_one("#confirm", Button).focus()

    def action_cancel(self) -> None:
        """Escape cancels."""
        self.dismiss(None)
