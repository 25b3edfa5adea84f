"""The transforms key: read the switches through the control API, then open the transforms screen."""

from __future__ import annotations

from textual.screen import Screen

from tui.ui import action_messages as am
from tui.ui.flows.control import ControlFlow
from tui.ui.flows.host import ActionView, Flow


class TransformsFlow(Flow):
    """Opens the transforms screen on a fresh control answer (or says why not)."""

    def __init__(self, screen: Screen[None], view: ActionView, control: ControlFlow) -> None:
        super().__init__(screen, view)
        self.control = control

    def start(self) -> None:
        """Read the switches, then open the screen."""
        self.in_thread(self._prepare, group="act", description="read transforms")

    def _prepare(self) -> None:
        snapshot = self.control.read()
        self.screen.post_message(am.ControlChanged(snapshot))
        self.screen.post_message(am.TransformsReady(snapshot))

    def ready(self, message: am.TransformsReady) -> None:
        """Open the screen (or say why not)."""
        from tui.ui.screens.transforms import TransformsScreen

        client = self.view.feed.driver.control_client()
        if not message.snapshot.answers or client is None:
            self.screen.notify(message.snapshot.error, title="transforms", severity="error", markup=False)
            return
        selected = self.view.selected
        driver = self.view.feed.driver

        def latest_body() -> tuple[bytes | None, str]:
            if selected is None:
                return None, ""
            return driver.load_body(selected.id), selected.dialect

        screen = TransformsScreen(
            message.snapshot,
            client,
            latest_body=latest_body,
            transform_settings=self.view.settings.transforms,
        )
        self.screen.app.push_screen(screen)
