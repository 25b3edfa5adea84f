"""What the dashboard's acting keys act through: the proxy's control client and the server's control."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tui.core.actions.router_control import ModelAction
    from tui.core.actions.server_probe import ServerState, ServerStatus
    from tui.core.config import Settings

StateCallback = Callable[["ServerState"], None]


class RestartRun(Protocol):
    """A restart that went through: can wait for the request that shows the restored cache."""

    def await_reuse(self, timeout: float, stop: Callable[[], bool]) -> object:
        """Block until the next request says how much of the cache it reused (or timeout/stop)."""


class ServerControl(Protocol):
    """Start/stop/restart of llama-server, on this machine or on the `serve` host (blocking calls)."""

    where: str  # "" here, else " on HOST": appended to what the dialogs say
    model: str  # the model a restart starts ("" : none configured, restart unavailable)

    def status(self) -> ServerStatus:
        """Who runs the server and in which state it is."""

    def restart(
        self, ctx_size: int | None, parallel: int | None, *, force: bool, on_state: StateCallback
    ) -> RestartRun:
        """Stop and start with new sizes; PreflightError when the doctor refuses, ServerControlError else."""

    def model_action(self, action: str, name: str) -> ModelAction:
        """Router mode: load, unload or restart one model, wait for its state; RouterControlError if not."""


class LocalServerControl:
    """The configured llama-server of this machine (ServerController)."""

    where = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model = settings.server.model

    def status(self) -> ServerStatus:
        """ServerController.status()."""
        from tui.core.actions.server_control import ServerController

        return ServerController(self.settings).status()

    def restart(
        self, ctx_size: int | None, parallel: int | None, *, force: bool, on_state: StateCallback
    ) -> RestartRun:
        """ServerController.restart(), keeping the cache when it can."""
        from tui.core.actions.server_control import ServerController

        controller = ServerController(self.settings, on_state=on_state)
        controller.restart(ctx_size, parallel, force=force)
        return controller

    def model_action(self, action: str, name: str) -> ModelAction:
        """RouterControl on the configured server."""
        from tui.core.actions.router_control import RouterControl

        server = self.settings.server
        result: ModelAction = getattr(RouterControl(server.url, server.api_key), action)(name)
        return result
