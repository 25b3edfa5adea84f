"""The main screen's acting keys (compact, undo, restart, transforms, MCP toggle): dialogs and workers."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import work
from textual.notifications import SeverityLevel
from textual.worker import Worker, WorkerState, get_current_worker

from tui.core.control.client import ControlClient, ControlError
from tui.core.feed.control import ControlSnapshot, fetch_control
from tui.core.terminal_text import printable_lines
from tui.ui import action_messages as am
from tui.ui.availability import ActionContext
from tui.ui.format import grouped
from tui.ui.keys import unavailable_reason
from tui.ui.screens.dialogs import ConfirmDialog, PickDialog
from tui.ui.widgets.mcp_table import McpTable
from tui.ui.widgets.server_header import ServerHeader

# The action modules (tmux, server control, dialogs) load when an action first runs, not at start-up.
if TYPE_CHECKING:
    from textual.screen import Screen

    from tui.core.actions.server_control import ServerController, ServerState
    from tui.core.actions.tmux_compact import PaneInfo
    from tui.core.config import Settings
    from tui.core.feed.feed import DashboardFeed
    from tui.core.feed.views import RequestHistory
    from tui.core.poll.snapshots import ServerSnapshot
    from tui.core.records import RequestRecord
    from tui.ui.screens.restart_dialog import RestartRequest

    _Base = Screen[None]
else:
    _Base = object

CONTROL_TIMEOUT_S = 5.0
# New rows bring a control read at most this often (the switches change only by an action or the CLI).
CONTROL_AFTER_ROWS_S = 2.0
REUSE_WAIT_S = 600.0  # how long a restart waits for the request that shows the restored cache


class MainActions(_Base):
    """Mixed into MainScreen: every blocking call runs in a worker that posts an action message."""

    control: ControlSnapshot | None = None
    restart_phase: str = ""
    _control_client: ControlClient | None = None
    _control_read_at = 0.0
    _control_read_due = False
    if TYPE_CHECKING:
        feed: DashboardFeed
        settings: Settings
        selected: RequestRecord | None
        server: ServerSnapshot | None
        history: RequestHistory

        def _refresh_mcp(self, record: RequestRecord | None) -> None: ...

    # --- control state -----------------------------------------------------------------------------

    def control_client(self) -> ControlClient:
        """The embedded proxy's own URL once it listens, else [proxy] listen (one pooled client per URL)."""
        wanted = ControlClient(self.feed.driver.control_url(), timeout=CONTROL_TIMEOUT_S)
        current = self._control_client
        if current is not None and current.base_url == wanted.base_url:
            return current
        if current is not None:
            current.close()
        self._control_client = wanted
        return wanted

    def action_context(self) -> ActionContext:
        """What decides which acting keys run now."""
        info = self.feed.info
        address = self.control_client().base_url.removeprefix("http://")
        return ActionContext(info.mode, self.control, address, self.settings.server.model)

    def reason(self, action: str) -> str | None:
        """Why an action cannot run now (None: it can)."""
        return unavailable_reason(action, self.action_context())

    def action_why(self, action: str) -> None:
        """A greyed-out key was pressed: say why it cannot run (and re-read the proxy, it may be back)."""
        reason = self.reason(action)
        if reason:
            self.notify(reason, title="not available", severity="warning", timeout=4, markup=False)
            if self.feed.info.mode != "demo":
                self.refresh_control()

    @work(thread=True, group="control-once", exit_on_error=False, description="proxy control state")
    def refresh_control(self) -> None:
        """Read the proxy's switches: at start, once it listens, after actions and new rows (never polled)."""
        self.post_message(am.ControlChanged(fetch_control(self.control_client())))

    def refresh_control_after_rows(self) -> None:
        """New rows came in: the switches may have changed from the CLI, read them (rate-limited)."""
        now = time.monotonic()
        wait = CONTROL_AFTER_ROWS_S - (now - self._control_read_at)
        if wait <= 0:
            self._control_read_at = now
            self.refresh_control()
        elif not self._control_read_due:
            # Read once more after the pause, so the last row's effect (a compaction that stopped
            # applying, a switch) still shows when rows come faster than one read per pause.
            self._control_read_due = True
            self.set_timer(wait, self._deferred_control_read)

    def _deferred_control_read(self) -> None:
        self._control_read_due = False
        self._control_read_at = time.monotonic()
        self.refresh_control()

    def on_control_changed(self, message: am.ControlChanged) -> None:
        """Keep the snapshot, re-grey keys, refresh the MCP table."""
        changed = self.control is None or self.control.answers != message.snapshot.answers
        before = {c.session_id: c.detail for c in self.control.compactions} if self.control else {}
        self.control = message.snapshot
        for row in message.snapshot.compactions:
            if row.status == "not applying" and before.get(row.session_id) != row.detail:
                self.notify(  # once per new reason: the proxy sends the full history again meanwhile
                    f"session {row.session_id}: {row.detail}",
                    title="compaction not applying", severity="warning", timeout=15, markup=False,
                )
        if changed or message.snapshot.compactions:
            self.refresh_bindings()
        self._refresh_mcp(self.selected)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """One place for this screen's worker failures: say what broke."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.description}: {error}", title="error", severity="error", timeout=10)

    def on_action_result(self, message: am.ActionResult) -> None:
        """Tell the user how an action went."""
        severity: SeverityLevel = "error" if message.severity == "error" else "information"
        text = printable_lines(message.text)  # may name MCP servers and sessions from request bodies
        self.notify(text, title=message.title, severity=severity, timeout=8, markup=False)

    @staticmethod
    def _then(go: bool, start: Callable[..., object], *args: object) -> None:
        """A dialog callback: start the worker only when the user confirmed."""
        if go:
            start(*args)

    # --- MCP toggle --------------------------------------------------------------------------------

    def confirm_mcp_toggle(self, server: str) -> None:
        """State the cost from the selected request's anatomy, then switch after confirmation."""
        from tui.core.actions.mcp_switch import switch_cost

        enabled = self.control is not None and server in self.control.mcp_off
        record = self.selected
        if record is not None and record.anatomy is not None:
            cost_text = switch_cost(
                record.anatomy,
                server,
                switching_on=enabled,
                known_schema_tokens=self.query_one(McpTable).last_tokens.get(server),
                server_prompt_tokens=record.usage.prompt_tokens,
            ).text()
        else:
            cost_text = "cost unknown: no analysed request selected"
        title = f"switch MCP server {server} {'on' if enabled else 'off'}"
        body = f"{'Send' if enabled else 'Stop sending'} the tools of {server!r} to the model?\n{cost_text}"
        self.app.push_screen(
            ConfirmDialog(title, body, "Switch on" if enabled else "Switch off"),
            lambda ok: self._then(bool(ok), self._switch_mcp, server, enabled, cost_text),
        )

    @work(exclusive=True, thread=True, group="act", exit_on_error=False, description="switch MCP server")
    def _switch_mcp(self, server: str, enabled: bool, cost_text: str) -> None:
        try:
            self.control_client().set_mcp(server, enabled)
        except ControlError as exc:
            self.post_message(am.ActionResult("MCP", str(exc), "error"))
            return
        # The toast repeats the estimate the dialog showed: one number for one decision.
        state = "on" if enabled else "off"
        self.post_message(am.ActionResult("MCP", f"{server} switched {state}: {cost_text}"))
        self.post_message(am.ControlChanged(fetch_control(self.control_client())))

    # --- compact -----------------------------------------------------------------------------------

    def action_compact(self) -> None:
        """Look for the agent's tmux pane, then ask which mode."""
        self._prepare_compact()

    @work(exclusive=True, thread=True, group="act", exit_on_error=False, description="find agent pane")
    def _prepare_compact(self) -> None:
        from tui.core.actions.tmux_compact import find_agent_panes, make_server

        compact = self.settings.compact
        panes: tuple[PaneInfo, ...] = ()
        try:
            server = make_server(compact.tmux_socket or None)
            panes = tuple(find_agent_panes(server, compact.agent_command)) if server.is_alive() else ()
            if compact.pane:
                note = f"pane {compact.pane} ([compact] pane)"
            elif panes:
                note = f"{compact.agent_command!r} runs in tmux pane " + ", ".join(p.target for p in panes)
            else:
                note = f"no tmux pane runs {compact.agent_command!r} (pane mode lists the panes to pick from)"
        except Exception as exc:  # tmux missing or its server unreadable: pane mode explains when tried
            note = f"tmux: {exc}"
        snapshot = fetch_control(self.control_client())
        self.post_message(am.ControlChanged(snapshot))
        self.post_message(am.CompactPrepared(panes, note, snapshot.answers))

    def on_compact_prepared(self, message: am.CompactPrepared) -> None:
        """Open the dialog (default Cancel)."""
        from tui.ui.screens.compact_dialog import CompactDialog

        session = self.selected.session_id if self.selected is not None else ""
        dialog = CompactDialog(
            panes=len(message.panes) + bool(self.settings.compact.pane),
            pane_note=message.pane_note,
            proxy_ok=message.proxy_ok,
            session=session,
            keep_turns=self.settings.compact.keep_turns,
            preferred=self.settings.compact.mode,
        )
        self.app.push_screen(dialog, lambda mode: self._then(bool(mode), self._run_compact, mode, ""))

    @work(exclusive=True, thread=True, group="act", exit_on_error=False, description="compact")
    def _run_compact(self, mode: str, pane: str) -> None:
        from tui.core.actions.tmux_compact import PaneError, send_compact

        compact = self.settings.compact
        if mode == "pane":
            try:
                used = send_compact(
                    pane or compact.pane, agent=compact.agent_command, socket_name=compact.tmux_socket or None
                )
            except PaneError as exc:
                if exc.candidates:
                    self.post_message(am.PaneChoiceNeeded(str(exc), exc.candidates))
                else:
                    self.post_message(am.ActionResult("compact", str(exc), "error"))
                return
            self.post_message(am.ActionResult("compact", f"sent /compact to tmux pane {used.describe()}"))
            return
        session = self.selected.session_id if self.selected is not None else None
        client = self.control_client()
        try:
            try:
                answer = client.compact(session or None, compact.keep_turns)
            except ControlError as exc:
                if exc.status != 409 or "no request seen" not in str(exc):
                    raise
                # The proxy keys conversations its own way: fall back to its latest one.
                answer = client.compact(None, compact.keep_turns)
        except ControlError as exc:
            self.post_message(am.ActionResult("compact", str(exc), "error"))
            return
        from tui.core.actions.compaction import SUMMARY_CUT_NOTE

        saved = int(answer.get("tokens_saved") or 0)
        key = self.settings.keys.get("compact_undo", "u")
        self.post_message(
            am.ActionResult(
                "compact",
                f"session {answer.get('session_id')}: {grouped(saved)} tokens saved per request "
                f"(press {key} to undo)"
                + (f"; {SUMMARY_CUT_NOTE}" if answer.get("summary_cut") else ""),
            )
        )
        self.post_message(am.ControlChanged(fetch_control(self.control_client())))

    def on_pane_choice_needed(self, message: am.PaneChoiceNeeded) -> None:
        """Let the user pick the agent's pane."""
        choices = [(p.pane_id, p.describe()) for p in message.candidates]
        self.app.push_screen(
            PickDialog("which pane runs the agent?", message.problem, choices),
            lambda pane: self._then(bool(pane), self._run_compact, "pane", pane),
        )

    def action_compact_undo(self) -> None:
        """Ask, then drop the proxy compaction of the selected session (or the newest)."""
        active = self.control.compactions if self.control is not None else ()
        selected = self.selected.session_id if self.selected is not None else ""
        row = next((c for c in active if c.session_id == selected), active[0] if active else None)
        which = f"session {row.session_id}" if row is not None else "the newest session"
        saved = f" (it saves {grouped(row.tokens_saved)} tokens per request)" if row is not None else ""
        body = (
            f"Drop the proxy compaction of {which}{saved}? Its next request goes out with the full "
            "history again, and the server re-processes it from the summary on."
        )
        self.app.push_screen(
            ConfirmDialog("undo compaction", body, "Undo"),
            lambda ok: self._then(bool(ok), self._undo_compaction),
        )

    @work(exclusive=True, thread=True, group="act", exit_on_error=False, description="undo compaction")
    def _undo_compaction(self) -> None:
        active = self.control.compactions if self.control is not None else ()
        selected = self.selected.session_id if self.selected is not None else ""
        session = selected if any(c.session_id == selected for c in active) else None
        try:
            answer = self.control_client().undo_compaction(session)
        except ControlError as exc:
            self.post_message(am.ActionResult("undo compaction", str(exc), "error"))
            return
        self.post_message(
            am.ActionResult("undo compaction", f"session {answer.get('session_id')}: full history sent again")
        )
        self.post_message(am.ControlChanged(fetch_control(self.control_client())))

    # --- restart -----------------------------------------------------------------------------------

    def action_restart_server(self) -> None:
        """Read who runs the server, then open the dialog."""
        self._prepare_restart()

    @work(exclusive=True, thread=True, group="act", exit_on_error=False, description="server status")
    def _prepare_restart(self) -> None:
        from tui.core.actions.server_control import ServerController

        self.post_message(am.RestartPrepared(ServerController(self.settings).status()))

    def on_restart_prepared(self, message: am.RestartPrepared) -> None:
        """Current sizes from the poller (else settings), editable; say when the server is not ours."""
        from tui.core.actions.restart_cost import restart_cost_note
        from tui.ui.screens.restart_dialog import RestartDialog

        status, server = message.status, self.server
        configured = self.settings.server.parallel or 1
        parallel = (server.n_slots if server else None) or status.total_slots or configured
        per_slot = (server.n_ctx_slot if server else None) or status.n_ctx_slot
        ctx_size = per_slot * parallel if per_slot else (self.settings.server.ctx_size or 4096)
        note = f"llama-server {status.describe()}"
        if status.phase != "down" and not status.owned:
            note += "\nIt was not started by ctxbudget: restarting stops it and starts the configured one."
        note += f"\nmodel: {self.settings.server.model}"
        note += "\n" + restart_cost_note(server, self.history.series().prompt_tps)
        self.app.push_screen(
            RestartDialog(ctx_size=ctx_size, parallel=parallel, note=note),
            lambda request: self._then(request is not None, self._run_restart, request),
        )

    @work(exclusive=True, thread=True, group="act", exit_on_error=False, description="restart llama-server")
    def _run_restart(self, request: RestartRequest, force: bool = False) -> None:
        from tui.core.actions.server_control import PreflightError, ServerController, ServerState
        from tui.core.actions.server_errors import ServerControlError

        def progress(state: ServerState) -> None:
            self.post_message(am.ServerProgress(state))

        controller = ServerController(self.settings, on_state=progress)
        try:
            controller.restart(request.ctx_size, request.parallel, force=force)
            self.app.call_from_thread(self._verify_reuse, controller)
        except PreflightError as exc:
            self.post_message(am.RestartRefused(request, str(exc)))
        except ServerControlError as exc:
            self.post_message(am.ServerProgress(ServerState("failed", str(exc), url=controller.url)))

    @work(exclusive=True, thread=True, group="reuse", exit_on_error=False, description="await reuse")
    def _verify_reuse(self, controller: ServerController) -> None:
        """After a restore: say how much of the next request's prompt came from the cache."""
        worker = get_current_worker()
        controller.await_reuse(REUSE_WAIT_S, stop=lambda: worker.is_cancelled)

    def on_restart_refused(self, message: am.RestartRefused) -> None:
        """The doctor refused the launch: say why, and offer to restart anyway (default Cancel)."""
        self.restart_phase = "refused"
        self.app.push_screen(
            ConfirmDialog("restart refused", message.reason, "Restart anyway", variant="error"),
            lambda ok: self._then(bool(ok), self._run_restart, message.request, True),
        )

    def on_server_progress(self, message: am.ServerProgress) -> None:
        """Each restart step as a notification (errors with the log's first lines)."""
        state = message.state
        self.restart_phase = state.phase
        done = state.phase in ("up", "failed", "down", "verified")
        self.query_one(ServerHeader).show(action="" if done else f"restart: {state.phase}…")
        text = state.message + ("\n" + "\n".join(state.error_lines[:4]) if state.error_lines else "")
        severity: SeverityLevel = "error" if state.phase == "failed" else "information"
        self.notify(text, title=f"llama-server: {state.phase}", severity=severity, timeout=8, markup=False)

    # --- transforms --------------------------------------------------------------------------------

    def action_transforms(self) -> None:
        """Read the switches, then open the transforms screen."""
        self._prepare_transforms()

    @work(exclusive=True, thread=True, group="act", exit_on_error=False, description="read transforms")
    def _prepare_transforms(self) -> None:
        snapshot = fetch_control(self.control_client())
        self.post_message(am.ControlChanged(snapshot))
        self.post_message(am.TransformsReady(snapshot))

    def on_transforms_ready(self, message: am.TransformsReady) -> None:
        """Open the screen (or say why not)."""
        from tui.ui.screens.transforms import TransformsScreen

        if not message.snapshot.answers:
            self.notify(message.snapshot.error, title="transforms", severity="error", markup=False)
            return
        selected = self.selected
        driver = self.feed.driver

        def latest_body() -> tuple[bytes | None, str]:
            if selected is None:
                return None, ""
            return driver.load_body(selected.id), selected.dialect

        screen = TransformsScreen(
            message.snapshot,
            self.control_client(),
            latest_body=latest_body,
            transform_settings=self.settings.transforms,
        )
        self.app.push_screen(screen)
