"""Restart llama-server with new sizes, here or on the serve host: dialog, pre-flight refusal, progress."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.notifications import SeverityLevel
from textual.worker import get_current_worker

from tui.ui import action_messages as am
from tui.ui.flows.host import Flow
from tui.ui.screens.dialogs import ConfirmDialog
from tui.ui.widgets.server_header import ServerHeader

if TYPE_CHECKING:
    from tui.core.feed.acting import RestartRun, ServerControl
    from tui.ui.screens.restart_dialog import RestartRequest

REUSE_WAIT_S = 600.0  # how long a restart waits for the request that shows the restored cache


class RestartFlow(Flow):
    """Acts through the feed driver's server control (a local ServerController or a remote serve)."""

    phase = ""

    def _server_control(self) -> ServerControl:
        server = self.view.feed.driver.server_control()
        if server is None:
            raise RuntimeError("no llama-server to act on")
        return server

    def start(self) -> None:
        """Read who runs the server, then open the dialog."""
        self.in_thread(self._prepare, group="act", description="server status")

    def _prepare(self) -> None:
        self.screen.post_message(am.RestartPrepared(self._server_control().status()))

    def prepared(self, message: am.RestartPrepared) -> None:
        """Current sizes from the poller (else settings), editable; say when the server is not ours."""
        from tui.core.actions.restart_cost import restart_cost_note
        from tui.ui.screens.restart_dialog import RestartDialog

        status, server = message.status, self.view.server
        if status.models:  # router mode: one model at a time, or the whole router
            from dataclasses import replace

            from tui.ui.screens.model_actions import open_model_actions

            whole = am.RestartPrepared(replace(status, models=()))
            control = self._server_control()
            open_model_actions(
                self.screen, control.model_action, status.models, lambda: self.prepared(whole), control.where
            )
            return
        control = self._server_control()
        settings = self.view.settings.server
        configured = settings.parallel or 1
        parallel = (server.n_slots if server else None) or status.total_slots or configured
        per_slot = (server.n_ctx_slot if server else None) or status.n_ctx_slot
        ctx_size = per_slot * parallel if per_slot else (settings.ctx_size or 4096)
        note = f"llama-server{control.where} {status.describe()}"
        if status.phase != "down" and not status.owned:
            note += "\nIt was not started by ctxbudget: restarting stops it and starts the configured one."
        note += f"\nmodel: {control.model}"
        note += "\n" + restart_cost_note(server, self.view.history.series().prompt_tps)
        self.screen.app.push_screen(
            RestartDialog(ctx_size=ctx_size, parallel=parallel, note=note),
            lambda request: self.then(request is not None, self._start, request, False),
        )

    def _start(self, request: RestartRequest, force: bool) -> None:
        self.in_thread(self._run, request, force, group="act", description="restart llama-server")

    def _run(self, request: RestartRequest, force: bool) -> None:
        from tui.core.actions.server_control import PreflightError, ServerState
        from tui.core.actions.server_errors import ServerControlError

        def progress(state: ServerState) -> None:
            self.screen.post_message(am.ServerProgress(state))

        try:
            run = self._server_control().restart(
                request.ctx_size, request.parallel, force=force, on_state=progress
            )
            self.screen.app.call_from_thread(self._verify_reuse, run)
        except PreflightError as exc:
            self.screen.post_message(am.RestartRefused(request, str(exc)))
        except ServerControlError as exc:
            self.screen.post_message(am.ServerProgress(ServerState("failed", str(exc))))

    def _verify_reuse(self, run: RestartRun) -> None:
        """After a restore: say how much of the next request's prompt came from the cache."""

        def wait() -> None:
            worker = get_current_worker()
            run.await_reuse(REUSE_WAIT_S, stop=lambda: worker.is_cancelled)

        self.in_thread(wait, group="reuse", description="await reuse")

    def refused(self, message: am.RestartRefused) -> None:
        """The doctor refused the launch: say why, and offer to restart anyway (default Cancel)."""
        self.phase = "refused"
        self.screen.app.push_screen(
            ConfirmDialog("restart refused", message.reason, "Restart anyway", variant="error"),
            lambda ok: self.then(bool(ok), self._start, message.request, True),
        )

    def progress(self, message: am.ServerProgress) -> None:
        """Each restart step as a notification (errors with the log's first lines)."""
        state = message.state
        self.phase = state.phase
        done = state.phase in ("up", "failed", "down", "verified")
        self.screen.query_one(ServerHeader).show(action="" if done else f"restart: {state.phase}…")
        text = state.message + ("\n" + "\n".join(state.error_lines[:4]) if state.error_lines else "")
        severity: SeverityLevel = "error" if state.phase == "failed" else "information"
        self.screen.notify(
            text, title=f"llama-server: {state.phase}", severity=severity, timeout=8, markup=False
        )
