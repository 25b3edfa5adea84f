"""Command palette provider: the keys table's commands that can run right now."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from tui.ui.keys import KEYS, KeyAction, shown_key

if TYPE_CHECKING:
    from tui.ui.screens.main import MainScreen

Command = tuple[str, Callable[[], object], str]


class DashboardCommands(Provider):
    """Panes, follow, filter, the selected request, the acting keys, report, help."""

    def _main(self) -> MainScreen | None:
        from tui.ui.screens.main import MainScreen

        for screen in reversed(self.app.screen_stack):
            if isinstance(screen, MainScreen):
                return screen
        return None

    def _command(self, main: MainScreen, key: KeyAction) -> Command | None:
        """The palette entry for one key (None: not valid now); a few names say the current state."""
        name = key.command
        run: Callable[[], object] = partial(main.run_action, key.action)
        if key.owner == "app":
            run = partial(self.app.run_action, key.action)
        if key.action.startswith("pane("):
            name = f"{'Hide' if main.pane == key.id else 'Show'} {key.command}"
        elif key.id == "follow":
            following = main.query_one("#requests").following  # type: ignore[attr-defined]
            name = "Pause following" if following else key.command
        elif key.id == "detail":
            if main.selected is None:
                return None
            name, run = f"Open request #{main.selected.id}", main.action_open_latest
        elif key.id == "mcp_toggle":
            server = main.query_one("#mcp-view").selected_server()  # type: ignore[attr-defined]
            if server is None:
                return None
            name, run = f"Switch MCP server {server} on/off", partial(main.mcp_flow.confirm, server)
        return name, run, f"key {shown_key(key, main.settings.keys)}"

    def _commands(self) -> list[Command]:
        main = self._main()
        if main is None:
            return []
        out: list[Command] = []
        for key in KEYS:
            if not key.command or main.reason(key.name) is not None:
                continue
            command = self._command(main, key)
            if command is not None:
                out.append(command)
        return out

    async def discover(self) -> Hits:
        """All valid commands, shown when the palette opens."""
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        """Fuzzy match on the command names."""
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
