"""llama-server control on the serve host: POST /_ctxbudget/server/ACTION and its NDJSON steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tui.core.actions.server_probe import ServerState, ServerStatus
from tui.core.poll.snapshots import RouterModel
from tui.core.serve.remote_source import RemoteError, RemoteSource

if TYPE_CHECKING:
    from tui.core.actions.router_control import ModelAction
    from tui.core.feed.acting import RestartRun, StateCallback


def models_from_json(items: object) -> tuple[RouterModel, ...]:
    """RouterModel.to_json() items back into models (a router's status read through serve)."""
    if not isinstance(items, list):
        return ()
    return tuple(
        RouterModel(
            id=str(m.get("id", "")),
            status=str(m.get("status", "unknown")),
            source=str(m.get("source") or ""),
            exit_code=m.get("exit_code"),
            n_slots=int(m.get("n_slots") or 0),
            n_ctx_slot=int(m.get("n_ctx") or 0),
            n_ctx_train=m.get("n_ctx_train"),
        )
        for m in items
        if isinstance(m, dict)
    )


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
        models_from_json(data.get("models")),
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

    def __init__(self, client: RemoteSource, host: str, model: str = "") -> None:
        self.client = client
        self.where = f" on {host}"
        self.model = model or "(the serve host's [server] model)"  # serve refuses when it has none

    def status(self) -> ServerStatus:
        """GET server."""
        try:
            return status_from_json(self.client.server_status())
        except RemoteError as exc:
            return ServerStatus("down", self.client.url, False, last={"phase": "failed", "message": str(exc)})

    def restart(
        self, ctx_size: int | None, parallel: int | None, *, force: bool, on_state: StateCallback
    ) -> RestartRun:
        """POST server/restart; each step goes to on_state; a refusal raises PreflightError."""
        from tui.core.actions.server_control import PreflightError
        from tui.core.actions.server_errors import ServerControlError

        payload = {"ctx_size": ctx_size, "parallel": parallel, "force": force, "keep_cache": None}
        steps: list[ServerState] = []
        refused: dict[str, Any] = {}

        def step(data: dict[str, Any]) -> None:
            if "refused" in data:
                refused.update(data)
                return
            steps.append(state_from_json(data))
            on_state(steps[-1])

        try:
            self.client.server_action("restart", payload, step)
        except RemoteError as exc:
            raise ServerControlError(str(exc)) from exc
        if refused:
            raise PreflightError(str(refused["refused"]), list(refused.get("results") or []))
        if not steps:
            raise ServerControlError(f"{self.client.url} sent no restart step")
        return _Done()

    def model_action(self, action: str, name: str) -> ModelAction:
        """POST server/load|unload (restart with a model) for one router model; RouterControlError if not."""
        from tui.core.actions.router_control import ModelAction, RouterControlError

        try:
            last = self.client.server_action(action, {"model": name}, lambda step: None)
        except RemoteError as exc:
            raise RouterControlError(str(exc)) from exc
        if "error" in last:
            raise RouterControlError(str(last["error"]))
        if "action" not in last:
            raise RouterControlError(f"{self.client.url} sent no outcome for {action} {name}")
        return ModelAction.from_json(last)
