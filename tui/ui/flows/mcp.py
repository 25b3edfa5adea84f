"""The MCP toggle: state the cost from the selected request, confirm, switch through the control API."""

from __future__ import annotations

from textual.screen import Screen

from tui.core.control.client import ControlError
from tui.ui import action_messages as am
from tui.ui.flows.control import ControlFlow
from tui.ui.flows.host import ActionView, Flow
from tui.ui.screens.dialogs import ConfirmDialog
from tui.ui.widgets.mcp_table import McpTable


class McpFlow(Flow):
    """Switches one MCP server on or off in the proxy the feed's driver acts through."""

    def __init__(self, screen: Screen[None], view: ActionView, control: ControlFlow) -> None:
        super().__init__(screen, view)
        self.control = control

    def confirm(self, server: str) -> None:
        """State the cost from the selected request's anatomy, then switch after confirmation."""
        from tui.core.actions.mcp_switch import switch_cost

        snapshot = self.view.control
        enabled = snapshot is not None and server in snapshot.mcp_off
        record = self.view.selected
        if record is not None and record.anatomy is not None:
            cost_text = switch_cost(
                record.anatomy,
                server,
                switching_on=enabled,
                known_schema_tokens=self.screen.query_one(McpTable).last_tokens.get(server),
                server_prompt_tokens=record.usage.prompt_tokens,
            ).text()
        else:
            cost_text = "cost unknown: no analysed request selected"
        whose = f" for {self.control.user()}" if self.control.user() else ""
        title = f"switch MCP server {server} {'on' if enabled else 'off'}{whose}"
        body = f"{'Send' if enabled else 'Stop sending'} the tools of {server!r} to the model?\n{cost_text}"
        self.screen.app.push_screen(
            ConfirmDialog(title, body, "Switch on" if enabled else "Switch off"),
            lambda ok: self.then(bool(ok), self._start, server, enabled, cost_text),
        )

    def _start(self, server: str, enabled: bool, cost_text: str) -> None:
        self.in_thread(self._switch, server, enabled, cost_text, group="act", description="switch MCP server")

    def _switch(self, server: str, enabled: bool, cost_text: str) -> None:
        client = self.view.feed.driver.control_client()
        try:
            if client is None:
                raise ControlError("no proxy to act on")
            client.set_mcp(server, enabled, self.control.user())
        except ControlError as exc:
            self.screen.post_message(am.ActionResult("MCP", str(exc), "error"))
            return
        # The toast repeats the estimate the dialog showed: one number for one decision.
        state = "on" if enabled else "off"
        self.screen.post_message(am.ActionResult("MCP", f"{server} switched {state}: {cost_text}"))
        self.screen.post_message(am.ControlChanged(self.control.read()))
