"""Command palette provider: the dashboard commands that can run right now."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tui.ui.screens.main import MainScreen


class DashboardCommands(Provider):
    """Show panes, follow, filter, open the selected request, help."""

    def _main(self) -> MainScreen | None:
        from tui.ui.screens.main import MainScreen

        for screen in reversed(self.app.screen_stack):
            if isinstance(screen, MainScreen):
                return screen
        return None

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        main = self._main()
        if main is None:
            return []
        out: list[tuple[str, Callable[[], object], str]] = []
        for pane, label in (("log", "log pane"), ("slots", "slots and checkpoints"), ("mcp", "MCP servers")):
            verb = "Hide" if main.pane == pane else "Show"
            out.append((f"{verb} {label}", partial(main.action_pane, pane), f"key {pane[0]}"))
        table_following = main.query_one("#requests").following  # type: ignore[attr-defined]
        out.append(
            (
                "Pause following" if table_following else "Follow new traffic",
                main.action_toggle_follow,
                "key f",
            )
        )
        out.append(("Filter requests or log", main.action_filter, "key /"))
        if main.selected is not None:
            out.append((f"Open request #{main.selected.id}", main.action_open_latest, "key enter"))
        acts = (
            ("compact", "Compact the agent's context", main.action_compact, "c"),
            ("compact_undo", "Undo the proxy compaction", main.action_compact_undo, "u"),
            ("restart_server", "Restart llama-server", main.action_restart_server, "r"),
            ("transforms", "Request transforms", main.action_transforms, "t"),
        )
        keys = main.settings.keys
        for action, label, callback, key in acts:
            if main.reason(action) is None:
                out.append((label, callback, f"key {keys.get(action, key)}"))
        mcp = main.query_one("#mcp-view")
        server = mcp.selected_server()  # type: ignore[attr-defined]
        if server is not None and main.reason("toggle_server") is None:
            toggle = partial(main.confirm_mcp_toggle, server)
            out.append((f"Switch MCP server {server} on/off", toggle, "space"))
        out.append(("Report: this session and today", main.action_report, f"key {keys.get('report', 'g')}"))
        out.append(("Keys and help", self.app.action_help, "key ?"))  # type: ignore[attr-defined]
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
