"""The dashboard screen: header, budget, memory, sparklines, requests, and one optional pane."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import ContentSwitcher, Footer, Static
from textual.worker import Worker, WorkerState

from tui.core.config import Settings
from tui.core.doctor.template_check import dropped_tools_banner
from tui.core.feed.control import ControlSnapshot
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.follow import budget_record, mcp_record
from tui.core.feed.updates import SourceStatus
from tui.core.feed.views import RequestHistory, SessionCalls, budget_of, mcp_rows
from tui.core.logs.state import ServerFacts
from tui.core.poll.snapshots import GpuSnapshot, ServerSnapshot
from tui.core.records import RequestRecord
from tui.core.terminal_text import printable_lines
from tui.ui import action_messages as am
from tui.ui import messages as msg
from tui.ui.availability import ActionContext
from tui.ui.flows.compact import CompactFlow
from tui.ui.flows.control import ControlFlow
from tui.ui.flows.mcp import McpFlow
from tui.ui.flows.restart import RestartFlow
from tui.ui.flows.transforms import TransformsFlow
from tui.ui.format import grouped
from tui.ui.keys import bindings, unavailable_reason
from tui.ui.widgets.budget_bar import BudgetBar
from tui.ui.widgets.filter_bar import FilterBar
from tui.ui.widgets.log_pane import LogPane
from tui.ui.widgets.mcp_table import McpTable
from tui.ui.widgets.memory_panel import MemoryPanel
from tui.ui.widgets.requests_table import RequestsTable
from tui.ui.widgets.server_header import ServerHeader
from tui.ui.widgets.slots_panel import SlotsPanel
from tui.ui.widgets.spark_panel import SparkPanel

PANES = ("slots", "mcp", "log")
PANE_TITLES = {"slots": "slots and checkpoints", "mcp": "MCP servers (selected request)", "log": "log"}


class MainScreen(Screen[None]):
    """Renders feed updates; its acting keys hand over to one flow object each (tui/ui/flows/)."""

    BINDINGS = bindings("main")

    pane: reactive[str] = reactive("", init=False)

    def __init__(self, feed: DashboardFeed, settings: Settings, *, tz: dt.tzinfo | None = None) -> None:
        super().__init__()
        self.feed = feed
        self.settings = settings
        self.tz = tz
        self.server: ServerSnapshot | None = None
        self.facts = ServerFacts()
        self.history = RequestHistory(settings.dashboard.sparkline_requests)
        self.session_calls = SessionCalls()
        self.selected: RequestRecord | None = None
        self.sources: dict[str, SourceStatus] = {}
        self.control_flow = ControlFlow(self, self)
        self.mcp_flow = McpFlow(self, self, self.control_flow)
        self.compact_flow = CompactFlow(self, self, self.control_flow)
        self.restart_flow = RestartFlow(self, self)
        self.transforms_flow = TransformsFlow(self, self, self.control_flow)

    def compose(self) -> ComposeResult:
        """Layout; CSS in app.tcss decides what shows at which size."""
        yield ServerHeader(self.feed.info, id="header")
        with Vertical(id="top"):
            yield BudgetBar(tz=self.tz, id="budget")
            yield MemoryPanel(id="memory")
            yield SparkPanel(id="sparks")
        with Vertical(id="lower"):
            with Vertical(id="requests-box"):
                yield RequestsTable(tz=self.tz, id="requests")
                yield Static("", id="requests-empty")
            with ContentSwitcher(id="pane", initial="log-view"):
                with VerticalScroll(id="slots-view"):
                    yield SlotsPanel(id="slots")
                yield McpTable(id="mcp-view")
                with Vertical(id="log-view"):
                    yield Static("", id="log-hint")
                    yield LogPane(max_lines=self.settings.dashboard.log_lines, id="log")
        yield FilterBar(id="filter")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        """Initial texts."""
        self.query_one("#requests-box").border_title = "requests"
        self.query_one("#slots-view").border_title = PANE_TITLES["slots"]
        self.query_one("#mcp-view").border_title = PANE_TITLES["mcp"]
        self.query_one(FilterBar).display = False
        self.query_one("#log-hint", Static).display = False
        self._show_empty_hint()
        self.query_one(RequestsTable).focus()
        if self.feed.info.mode != "demo":
            self.control_flow.refresh()
        self.feed.deliver_backlog()  # rows read while the UI loaded go into the first frame

    # --- feed messages -----------------------------------------------------------------------------

    def on_records_added(self, message: msg.RecordsAdded) -> None:
        """New journal rows."""
        records = message.update.records
        table = self.query_one(RequestsTable)
        if message.update.replaced:
            table.replace_records(records)
            if self.selected is not None and any(r.id == self.selected.id for r in records):
                was_in_flight = self.selected.in_flight
                self.selected = next(r for r in records if r.id == self.selected.id)
                if was_in_flight:  # its final row: anatomy and MCP servers now known
                    self._refresh_budget()
                    self._refresh_mcp(self.selected)
        else:
            table.add_records(records)
        self.history.add(records)
        self.session_calls.add(records)
        self.query_one(SparkPanel).show(self.history.series())
        counted = [r for r in records if r.anatomy is not None]
        if counted:
            anatomy = counted[-1].anatomy
            assert anatomy is not None
            counter = "exact" if anatomy.exact else f"approx ({anatomy.counter or '?'})"
            self.query_one(ServerHeader).show(counter=counter)
        self._show_empty_hint()
        if message.update.initial:
            self.call_after_refresh(self.feed.ui_ready.set)
        elif self.feed.info.mode != "demo":
            self.control_flow.refresh_after_rows()

    def on_log_added(self, message: msg.LogAdded) -> None:
        """A batch of log lines."""
        pane = self.query_one(LogPane)
        if message.update.restart:
            pane.replace_lines(message.update.lines)
        else:
            pane.add_lines(message.update.lines)

    def on_server_changed(self, message: msg.ServerChanged) -> None:
        """A server poll."""
        self.server = message.snapshot
        self.query_one(ServerHeader).show(server=message.snapshot)
        self.query_one(MemoryPanel).show(server=message.snapshot)
        self.query_one(SlotsPanel).show(server=message.snapshot)
        self._refresh_budget()

    def on_gpu_changed(self, message: msg.GpuChanged) -> None:
        """A GPU sample."""
        snapshot: GpuSnapshot = message.snapshot
        self.query_one(MemoryPanel).show(gpu=snapshot)

    def on_slots_changed(self, message: msg.SlotsChanged) -> None:
        """Slot activity from the log."""
        self.query_one(SlotsPanel).show(states=message.update.slots, users=message.update.users)
        self.query_one(RequestsTable).show_flights(message.update.flights)
        if self.selected is not None and self.selected.in_flight:
            self._refresh_budget()

    def on_facts_changed(self, message: msg.FactsChanged) -> None:
        """Facts from the log."""
        self.facts = message.facts
        self.query_one(ServerHeader).show(facts=message.facts)
        self.query_one(MemoryPanel).show(facts=message.facts)

    def on_source_changed(self, message: msg.SourceChanged) -> None:
        """A source's state: shown where that source's data would be."""
        status = message.status
        self.sources[status.source] = status
        if status.source == "log":
            hint = self.query_one("#log-hint", Static)
            hint.update(Text(status.message))
            hint.display = status.health != "ok" and bool(status.message)
            hint.set_class(status.health in ("missing", "error"), "-problem")
        elif status.source == "link":
            link = "" if status.health == "ok" else status.message
            self.query_one(ServerHeader).show(link=link, info=self.feed.info)
            if status.health == "ok":
                self.control_flow.refresh()  # the remote proxy's switches, read again after a reconnect
        elif status.source in ("journal", "proxy"):
            self._show_empty_hint()
            if status.source == "journal":
                self.query_one(ServerHeader).show(journal=status.message if status.health == "error" else "")
            if status.source == "proxy" and status.health == "ok":
                self.control_flow.refresh()  # the acting keys light up now, not at the next control poll
        if status.health == "error":
            self.notify(status.message, title=status.source, severity="error", timeout=8, markup=False)

    # --- selection ---------------------------------------------------------------------------------

    @on(RequestsTable.Selected)
    def _selected(self, event: RequestsTable.Selected) -> None:
        self.selected = event.record
        self._refresh_budget(following=event.following)
        self._refresh_mcp(event.record)
        if (
            event.record is not None
            and not event.record.anatomy
            or (event.record is not None and event.record.anatomy and not event.record.anatomy.parts)
        ):
            self._load_full_record(event.record.id)

    @work(exclusive=True, group="record", thread=True, exit_on_error=False, description="load record parts")
    def _load_full_record(self, record_id: int) -> None:
        full = self.feed.driver.load_record(record_id)
        if full is not None:
            self.app.call_from_thread(self._full_record_loaded, full)

    def _full_record_loaded(self, record: RequestRecord) -> None:
        self.session_calls.add([record])
        if self.selected is not None and self.selected.id == record.id:
            self._refresh_mcp(record)

    def window(self) -> int:
        """The slot context the budget is measured against."""
        server = self.server
        if server is not None and server.n_ctx_slot:
            return server.n_ctx_slot
        return self.facts.n_ctx_slot or self.settings.agent.context_window

    def _refresh_budget(self, following: bool | None = None) -> None:
        record = self.selected
        bar = self.query_one(BudgetBar)
        follow = bar.following if following is None else following
        from tui.core.insight.forecast import budget_phrase

        table = self.query_one(RequestsTable)
        rows = list(table.by_id.values())
        if record is not None and follow:
            record = budget_record(rows, record)
        forecast = budget_phrase(rows, record, self.window() or None) if record else ""
        flight = table.flights.get(record.id) if record is not None and record.in_flight else None
        bar.flight = flight.text() if flight is not None else ""
        template_tools = self.server.template_tools if self.server is not None else None
        bar.banner = dropped_tools_banner(template_tools, record)
        bar.show(record, budget_of(record, self.window()) if record else None, follow, forecast)

    def _refresh_mcp(self, record: RequestRecord | None) -> None:
        if record is not None and self.query_one(BudgetBar).following:
            record = mcp_record(self.query_one(RequestsTable).by_id.values(), record)
        calls = self.session_calls.of(record.session_id) if record else {}
        table = self.query_one(McpTable)
        table.toggle_reason = self.reason("toggle_server")
        control = self.control if self.control is not None and self.control.answers else None
        # Switched-off servers are listed even when the selected request went out without them.
        known = [*self.settings.anatomy.mcp_servers, *sorted(control.mcp_off if control else ())]
        table.show(mcp_rows(record, known, calls), control)
        saved_now = record.mcp_saved_tokens if record is not None else None
        subtitle = f"this request: {grouped(saved_now or 0)} tokens saved by switched-off servers"
        if control is not None:
            subtitle += f" · this run: {grouped(control.mcp_saved_tokens)}"
        self.query_one(McpTable).border_subtitle = subtitle

    def _show_empty_hint(self) -> None:
        table = self.query_one(RequestsTable)
        empty = self.query_one("#requests-empty", Static)
        info = self.feed.info
        if info.mode == "attach":
            hint = (
                f"no requests in {info.journal_path} yet: is `ctxbudget proxy` running "
                "and your agent pointed at it?"
            )
        elif info.mode == "demo":
            hint = "demo: waiting for the first recorded request…"
        elif info.mode == "remote":
            proxy = info.proxy_address or "the proxy of `ctxbudget serve --proxy`"
            hint = (
                f"no requests yet on {info.remote_host or info.remote}: point your agent at http://{proxy}\n"
                f"  `ctxbudget env --connect URL` prints the settings"
            )
        else:
            proxy = info.proxy_address or self.settings.proxy.listen
            hint = (
                f"no requests yet: point your agent at http://{proxy}\n"
                f"  Claude Code: ANTHROPIC_BASE_URL=http://{proxy}\n"
                f"  opencode: provider baseURL http://{proxy}/v1"
            )
        journal = self.sources.get("journal")
        if journal is not None and journal.health in ("error", "missing"):
            hint = journal.message
        empty.update(Text(hint))
        empty.display = table.row_count == 0
        table.display = table.row_count > 0
        self.query_one(BudgetBar).empty_hint = hint.split("\n", 1)[0]

    # --- actions -----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Acting keys that cannot run now show greyed out (None); undo only shows while it can run."""
        reason = self.reason(action)
        if action == "compact_undo" and reason is not None:
            return False  # only shown while a compaction can be undone; its key still explains why not
        return None if reason is not None else True

    @on(McpTable.ToggleRequested)
    def _toggle_requested(self, event: McpTable.ToggleRequested) -> None:
        self.mcp_flow.confirm(event.server)

    def watch_pane(self, pane: str) -> None:
        """Show the chosen pane (or none) and keep focus on something visible."""
        self.set_class(bool(pane), "-with-pane")
        self.query_one(LogPane).set_active(pane == "log")
        if pane:
            self.query_one(ContentSwitcher).current = f"{pane}-view"
            target = {"log": "#log", "mcp": "#mcp-view", "slots": "#slots-view"}[pane]
            self.query_one(target).focus()
        else:
            self.query_one(RequestsTable).focus()
        self.refresh_bindings()

    def action_pane(self, pane: str) -> None:
        """Show a pane; the same key again hides it."""
        self.pane = "" if self.pane == pane else pane

    def action_toggle_follow(self) -> None:
        """Follow new traffic on/off: table cursor on the newest row and the log at its end."""
        table = self.query_one(RequestsTable)
        follow = not table.following
        table.set_following(follow)
        self.query_one(LogPane).set_follow(follow)
        self.notify("following new traffic" if follow else "follow paused", timeout=2)

    def action_filter(self) -> None:
        """Open the filter bar for the log (when it is the visible pane) or the requests."""
        target = "log" if self.pane == "log" else "requests"
        current = (
            self.query_one(LogPane).filter_text
            if target == "log"
            else self.query_one(RequestsTable).filter_text
        )
        self.query_one(FilterBar).open(target, current)

    @on(FilterBar.Changed)
    def _filter_changed(self, event: FilterBar.Changed) -> None:
        bar = self.query_one(FilterBar)
        if bar.target == "log":
            self.query_one(LogPane).set_query(event.value)
        else:
            table = self.query_one(RequestsTable)
            table.set_query(event.value)
            title = "requests" + (f" · filter: {event.value}" if event.value.strip() else "")
            self.query_one("#requests-box").border_title = title

    @on(FilterBar.Submitted)
    def _filter_submitted(self, event: FilterBar.Submitted) -> None:
        self.query_one(FilterBar).action_close()

    @on(FilterBar.Closed)
    def _filter_closed(self) -> None:
        if self.pane == "log":
            self.query_one(LogPane).focus()
        else:
            self.query_one(RequestsTable).focus()

    @on(RequestsTable.OpenDetail)
    def _open_detail(self, event: RequestsTable.OpenDetail) -> None:
        from tui.ui.screens.detail import RequestDetailScreen

        self.app.push_screen(RequestDetailScreen(event.record, self.feed, self.window(), tz=self.tz))

    def action_report(self) -> None:
        """The report view: this session's and today's numbers (`ctxbudget report` for the journal)."""
        from pathlib import Path

        from tui.ui.screens.report import ReportScreen

        records = list(self.query_one(RequestsTable).by_id.values())
        session = self.selected.session_id if self.selected is not None else None
        info = self.feed.info
        local = info.mode not in ("demo", "remote")  # a remote journal is on the serve host
        journal = Path(info.journal_path) if local and info.journal_path else None
        self.app.push_screen(ReportScreen(records, session, self.settings.report, journal))

    def action_findings(self) -> None:
        """The findings pane for the selected request's session (tui/ui/screens/findings.py)."""
        from tui.ui.screens.findings import FindingsScreen

        info = self.feed.info
        local = info.mode not in ("demo", "remote")
        journal = info.journal_path if local and info.journal_path else None
        session = self.selected.session_id if self.selected is not None else None
        self.app.push_screen(FindingsScreen(journal, session, self.settings))

    def action_open_latest(self) -> None:
        """Open the detail of the selected (or latest) request."""
        if self.selected is not None:
            self._open_detail(RequestsTable.OpenDetail(self.selected))

    # --- acting keys: each flow object owns its dialogs and workers ----------------------------------

    @property
    def control(self) -> ControlSnapshot | None:
        """The proxy's last control answer (None before the first read)."""
        return self.control_flow.snapshot

    @property
    def restart_phase(self) -> str:
        """The last restart step ("" before any)."""
        return self.restart_flow.phase

    def action_context(self) -> ActionContext:
        """What decides which acting keys run now."""
        return self.control_flow.context()

    def reason(self, action: str) -> str | None:
        """Why an action cannot run now (None: it can)."""
        return unavailable_reason(action, self.action_context())

    def action_why(self, action: str) -> None:
        """A greyed-out key was pressed: say why it cannot run (and re-read the proxy, it may be back)."""
        reason = self.reason(action)
        if reason:
            self.notify(reason, title="not available", severity="warning", timeout=4, markup=False)
            if self.feed.info.mode != "demo":
                self.control_flow.refresh()

    def action_compact(self) -> None:
        """Look for the agent's tmux pane, then ask which mode."""
        self.compact_flow.start()

    def action_compact_undo(self) -> None:
        """Ask, then drop the proxy compaction of the selected session (or the newest)."""
        self.compact_flow.confirm_undo()

    def action_restart_server(self) -> None:
        """Read who runs the server, then open the dialog."""
        self.restart_flow.start()

    def action_transforms(self) -> None:
        """Read the switches, then open the transforms screen."""
        self.transforms_flow.start()

    def on_control_changed(self, message: am.ControlChanged) -> None:
        """Keep the snapshot, re-grey keys, refresh the MCP table."""
        if self.control_flow.changed(message.snapshot):
            self.refresh_bindings()
        self._refresh_mcp(self.selected)

    def on_compact_prepared(self, message: am.CompactPrepared) -> None:
        """Open the compaction dialog."""
        self.compact_flow.prepared(message)

    def on_pane_choice_needed(self, message: am.PaneChoiceNeeded) -> None:
        """Let the user pick the agent's pane."""
        self.compact_flow.pick_pane(message)

    def on_restart_prepared(self, message: am.RestartPrepared) -> None:
        """Open the restart dialog."""
        self.restart_flow.prepared(message)

    def on_restart_refused(self, message: am.RestartRefused) -> None:
        """Offer to restart anyway."""
        self.restart_flow.refused(message)

    def on_server_progress(self, message: am.ServerProgress) -> None:
        """A restart step."""
        self.restart_flow.progress(message)

    def on_transforms_ready(self, message: am.TransformsReady) -> None:
        """Open the transforms screen."""
        self.transforms_flow.ready(message)

    def on_action_result(self, message: am.ActionResult) -> None:
        """Tell the user how an action went."""
        severity: SeverityLevel = "error" if message.severity == "error" else "information"
        text = printable_lines(message.text)  # may name MCP servers and sessions from request bodies
        self.notify(text, title=message.title, severity=severity, timeout=8, markup=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """One place for this screen's worker failures: say what broke."""
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.notify(f"{event.worker.description}: {error}", title="error", severity="error", timeout=10)
