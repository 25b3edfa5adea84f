"""llama-server control on the serve host: POST /_ctxbudget/server/restart and its NDJSON steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tui.core.actions.server_probe import ServerState, ServerStatus
from tui.core.remote.client import RemoteClient, RemoteError

if TYPE_CHECKING:
    from tui.core.feed.acting import RestartRun, StateCallback


def status_from_json(data: dict[str, Any]) -> ServerStatus:
    """A ServerStatus from its to_json() form (the pid record stays on the server)."""
    return ServerStatus(
        str(data.get("phase") or "down"),
        str(data.get("url") or ""),
        bool(data.get("owned")),
        data.get("pid"),
        tuple(data.get("foreign_pids") or ()),
        str(data.get("model") or ""),
        data.get("n_ctx_slot"),
        data.get("total_slots"),
        None,
        data.get("last"),
    )


def state_from_json(data: dict[str, Any]) -> ServerState:
    """A ServerState from its to_json() form."""
    return ServerState(
        str(data.get("phase") or ""),
        str(data.get("message") or ""),
        data.get("pid"),
        str(data.get("url") or ""),
        tuple(data.get("error_lines") or ()),
    )


class _Done:
    """A remote restart: serve verifies the cache reuse itself, so there is nothing to wait for here."""

    def await_reuse(self, timeout: float, stop: Callable[[], bool]) -> object:
        return None


class RemoteServerControl:
    """ServerControl for the llama-server that `ctxbudget serve` controls on its host."""

    def __init__(self, client: RemoteClient, host: str, model: str = "remote") -> None:
        self.client = client
        self.where = f" on {host}"
        self.model = model  # the server host's [server] model (serve refuses when it has none)

    def status(self) -> ServerStatus:
        """GET server."""
        try:
            return status_from_json(self.client.server_status())
        except RemoteError as exc:
            return ServerStatus(
                "down", self.client.target.url, False, last={"phase": "failed", "message": str(exc)}
            )

    def restart(
        self, ctx_size: int | None, parallel: int | None, *, force: bool, on_state: StateCallback
    ) -> RestartRun:
        """POST server/restart; each step goes to on_state; a refusal raises PreflightError."""
        from tui.core.actions.server_control import PreflightError
        from tui.core.actions.server_errors import ServerControlError

        payload = {"ctx_size": ctx_size, "parallel": parallel, "force": force}
        last: ServerState | None = None
        try:
            for step in self.client.server_action("restart", payload):
                if "refused" in step:
                    raise PreflightError(str(step["refused"]), list(step.get("results") or []))
                last = state_from_json(step)
                on_state(last)
        except RemoteError as exc:
            raise ServerControlError(str(exc)) from exc
        if last is None:
            raise ServerControlError(f"{self.client.target.where} sent no restart step")
        return _Done()
