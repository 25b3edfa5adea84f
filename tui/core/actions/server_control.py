"""Start, stop and restart llama-server from settings, with visible progress and the log's first errors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui.core import procfs
from tui.core.actions.reuse_check import await_reuse, log_size
from tui.core.actions.router_control import router_models
from tui.core.actions.server_errors import ServerControlError
from tui.core.actions.server_launch import (
    LaunchPlan,
    PidRecord,
    build_launch,
    clear_pid_record,
    host_port,
    last_outcome,
    read_pid_record,
    record_outcome,
    stop_timeout,
    write_pid_record,
)
from tui.core.actions.server_probe import (
    ServerState,
    ServerStatus,
    StateCallback,
    error_lines,
    fetch_props,
    port_is_free,
    probe_health,
)
from tui.core.actions.slot_cache import (
    SLOT_SAVE_FLAG,
    CachePlan,
    SavedSlot,
    SlotCacheError,
    ensure_slot_save_dir,
    flag_value,
    read_slots,
    refusal_reason,
    restore_slots,
    save_slots,
    slot_save_dir,
)
from tui.core.actions.state_files import data_dir
from tui.core.config import Settings
from tui.core.poll.router import ROUTER_ROLE
from tui.core.poll.snapshots import RouterModel

__all__ = ["PreflightError", "ServerController", "ServerState", "ServerStatus", "preflight"]

HEALTH_TIMEOUT = 300.0
PORT_FREE_TIMEOUT = 10.0
# Doctor checks whose failure means the server would not start or would not fit.
BLOCKING_CHECKS = ("model", "memory", "v_cache")


class PreflightError(ServerControlError):
    """The doctor found a blocking problem in the planned launch (use force to start anyway)."""

    def __init__(self, message: str, results: list[Any]) -> None:
        super().__init__(message)
        self.results = results


def preflight(settings: Settings, plan: LaunchPlan) -> list[Any]:
    """Run the doctor on the planned launch; returns its CheckResults (blocking ones have status fail)."""
    from tui.core.doctor import gather_facts, launch_from_settings, run_checks

    launch = launch_from_settings(settings, ctx_size=plan.ctx_size, parallel=plan.parallel)
    facts = asyncio.run(
        gather_facts(
            launch, api_key=settings.server.api_key, prefer_planned=True, gpu_enabled=settings.gpu.enabled,
            journal=settings.journal_path(),
        )
    )
    return list(run_checks(facts))


class ServerController:
    """Controls the llama-server of one Settings; call from a worker thread (it blocks while waiting)."""

    _children: dict[int, subprocess.Popen[bytes]] = {}

    def __init__(
        self,
        settings: Settings,
        *,
        on_state: StateCallback | None = None,
        health_timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.on_state = on_state
        self.health_timeout = health_timeout
        self._reuse_from: tuple[Path, int] | None = None  # the log and offset after a restore
        self.last_checks: list[Any] = []  # the doctor's results of the last start/restart (warnings to show)
        host, port = host_port(settings)
        self.host, self.port = host, port
        self.url = f"http://{host}:{port}"

    def _emit(
        self, phase: str, message: str, pid: int | None = None, lines: tuple[str, ...] = ()
    ) -> ServerState:
        state = ServerState(phase, message, pid, self.url, lines)
        if self.on_state is not None:
            self.on_state(state)
        return state

    def _owned(self) -> PidRecord | None:
        record = read_pid_record()
        if record is None or record.port != self.port:
            return None
        self._reap()
        return record if procfs.is_alive(record.pid, record.start_time) else None

    def _reap(self) -> None:
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    def status(self) -> ServerStatus:
        """State of the server on the configured port, and whether we started it."""
        record = self._owned()
        health = probe_health(self.url)
        foreign: tuple[int, ...] = ()
        if record is None and health != "down":
            foreign = tuple(procfs.port_owner_pids(self.port))
        if health == "up":
            props = fetch_props(self.url, self.settings.server.api_key) or {}
            settings_ = props.get("default_generation_settings") or {}
            models: tuple[RouterModel, ...] = ()
            if props.get("role") == ROUTER_ROLE:  # router mode: each model with its state and n_ctx
                models = router_models(self.url, self.settings.server.api_key)
            return ServerStatus(
                "up",
                self.url,
                record is not None,
                record.pid if record else None,
                foreign,
                str(props.get("model_alias") or props.get("model_path") or ""),
                settings_.get("n_ctx"),
                props.get("total_slots"),
                record,
                models=models,
            )
        if health == "loading" or record is not None:
            phase = "loading" if health == "loading" else "starting"
            return ServerStatus(
                phase, self.url, record is not None, record.pid if record else None, foreign, record=record
            )
        return ServerStatus("down", self.url, False, last=last_outcome())

    def stop(self) -> ServerState:
        """Stop our server, or a foreign one we can identify by the port it listens on."""
        record = self._owned()
        if record is not None:
            self._emit("stopping", f"stopping llama-server (pid {record.pid})", record.pid)
            how = procfs.terminate(record.pid, stop_timeout(self.settings))
            self._reap()
            clear_pid_record()
            self._wait_port_free()
            return self._emit("down", f"llama-server stopped ({how})", record.pid)
        clear_pid_record()
        health = probe_health(self.url)
        if health == "down" and port_is_free(self.host, self.port):
            return self._emit("down", f"no llama-server answers at {self.url}")
        owners = procfs.port_owner_pids(self.port)
        if not owners:
            raise ServerControlError(
                f"the server at {self.url} was not started by ctxbudget and its process could not be "
                f"identified (another user, a container or another host?); stop it yourself, then run "
                f"`ctxbudget server start`"
            )
        commands = {pid: " ".join(procfs.command_line(pid))[:160] for pid in owners}
        if health == "down" and not any("llama" in cmd for cmd in commands.values()):
            taken = ", ".join(f"pid {pid} ({cmd})" for pid, cmd in commands.items())
            raise ServerControlError(
                f"port {self.port} is taken by {taken}, which does not answer /health like llama-server; "
                f"free the port or change [server] port"
            )
        for pid, cmd in commands.items():
            self._emit(
                "stopping",
                f"the server at {self.url} was not started by ctxbudget: stopping pid {pid} ({cmd})",
                pid,
            )
            procfs.terminate(pid, stop_timeout(self.settings))
        self._wait_port_free()
        return self._emit("down", f"stopped pid {', '.join(map(str, owners))}")

    def _wait_port_free(self) -> None:
        deadline = time.monotonic() + PORT_FREE_TIMEOUT
        while not port_is_free(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def plan(self, ctx_size: int | None = None, parallel: int | None = None) -> LaunchPlan:
        """The launch that start/restart would run."""
        return build_launch(self.settings, ctx_size=ctx_size, parallel=parallel)

    def check(self, plan: LaunchPlan, force: bool) -> list[Any]:
        """Doctor preflight (skipped when forced); raises PreflightError on a blocking failure."""
        if force:
            self.last_checks = []
            return []
        results = preflight(self.settings, plan)
        self.last_checks = results
        blocking = [r for r in results if r.status == "fail" and r.check in BLOCKING_CHECKS]
        if blocking:
            text = "; ".join(
                f"{r.check}: {r.message}" + (f" (fix: {r.fix})" if r.fix else "") for r in blocking
            )
            raise PreflightError(
                f"refusing to start, the doctor found: {text}; use --force to start anyway", results
            )
        return results

    def start(
        self, ctx_size: int | None = None, parallel: int | None = None, force: bool = False
    ) -> ServerState:
        """Start the configured server and wait until /health answers (or it fails)."""
        plan = self.plan(ctx_size, parallel)
        record = self._owned()
        if record is not None:
            raise ServerControlError(f"llama-server already runs (pid {record.pid}); use restart")
        if probe_health(self.url) != "down" or not port_is_free(self.host, self.port):
            raise ServerControlError(f"something already listens on {self.url}; use restart to replace it")
        self.check(plan, force)
        return self._launch(plan)

    def ensure_started(self, force: bool = False) -> ServerState | None:
        """For [server] autostart: start the configured server when nothing answers; None when one runs."""
        if self.status().phase != "down":
            return None
        return self.start(force=force)

    def restart(
        self,
        ctx_size: int | None = None,
        parallel: int | None = None,
        force: bool = False,
        keep_cache: bool | None = None,
    ) -> ServerState:
        """Stop what runs on the port (ours, or an identifiable foreign one), then start ours.

        keep_cache saves the slots that hold a prompt and restores them into the new server: None keeps
        them when it can work (else says why and restarts without), True refuses the restart when it
        cannot, False drops the cache.
        """
        plan = self.plan(ctx_size, parallel)
        self.check(plan, force)
        saved = self._save_cache(plan, required=bool(keep_cache)) if keep_cache is not False else ()
        self.stop()
        # With slots to restore, "up" waits until they are back (the dashboard ends its progress at "up").
        state = self._launch(plan, up_phase="restoring" if saved else "up")
        if state.phase != "restoring":
            return state
        return self._restore_cache(saved, state, plan)

    def _cache_plan(self, plan: LaunchPlan) -> CachePlan:
        """The slots to save and, before anything is stopped, why the new launch could not take them."""
        if probe_health(self.url) != "up":
            return CachePlan((), empty="no server answers")
        try:
            slots = tuple(s for s in read_slots(self.url, plan.api_key) if s.n_tokens > 0)
        except SlotCacheError as exc:
            return CachePlan((), str(exc))
        if not slots:
            return CachePlan((), empty="no slot holds a prompt")
        props = fetch_props(self.url, plan.api_key) or {}
        record = self._owned()
        # The pid record keeps the command as text: match flag and value together (a path may hold spaces).
        running_args = record.command.split() if record else None
        new_dir = flag_value(plan.args, SLOT_SAVE_FLAG)
        if record is not None and SLOT_SAVE_FLAG not in record.command:
            return CachePlan(slots, f"the running server was started without {SLOT_SAVE_FLAG}")
        if record is not None and new_dir and f"{SLOT_SAVE_FLAG} {new_dir}" not in record.command:
            return CachePlan(slots, f"the running server saves its slots elsewhere than in {new_dir}")
        reason = refusal_reason(
            slots,
            running_model=str(props.get("model_path") or (record.model if record else "")),
            running_args=running_args,
            new_model=plan.model,
            new_args=plan.args,
            new_ctx_size=plan.ctx_size,
            new_parallel=plan.parallel,
        )
        return CachePlan(slots, reason)

    def _save_cache(self, plan: LaunchPlan, required: bool) -> tuple[SavedSlot, ...]:
        """Save the slots that hold a prompt; without `required`, a problem only skips keeping the cache."""
        cache = self._cache_plan(plan)
        if not cache.refusal and not cache.slots:
            if required:
                self._emit("cache", f"{cache.empty}: nothing to keep")
            return ()
        if cache.refusal:
            why = cache.refusal
            if required:
                raise SlotCacheError(
                    f"cannot keep the prompt cache: {why}; restart with --no-keep-cache to drop it"
                )
            self._emit("cache", f"not keeping the prompt cache: {why}")
            return ()
        self._emit("saving", f"saving {len(cache.slots)} slot(s), {cache.tokens:,} cached tokens")
        ensure_slot_save_dir()
        try:
            saved = save_slots(self.url, plan.api_key, cache.slots, lambda text: self._emit("saving", text))
        except SlotCacheError as exc:
            if required:
                raise SlotCacheError(f"cannot keep the prompt cache: {exc}; nothing was stopped") from exc
            self._emit("cache", f"not keeping the prompt cache: {exc}")
            return ()
        for item in saved:  # llama-server writes them with its umask; they hold the conversation
            path = slot_save_dir() / item.filename
            if path.exists():
                path.chmod(0o600)
        return saved

    def _restore_cache(
        self, saved: tuple[SavedSlot, ...], state: ServerState, plan: LaunchPlan
    ) -> ServerState:
        """Restore the saved slots into the new server; the final state says how many tokens came back."""
        try:
            restored, problems = restore_slots(
                self.url, plan.api_key, saved, lambda text: self._emit("restoring", text, state.pid)
            )
        except SlotCacheError as exc:
            restored, problems = {}, [str(exc)]
        for item in saved:  # once back in the server, the copy on disk is only a copy of the conversation
            if item.id in restored:
                (slot_save_dir() / item.filename).unlink(missing_ok=True)
        total = sum(restored.values())
        text = f"{state.message}; restored {total:,} tokens"
        if len(restored) > 1:
            text += " (" + ", ".join(f"slot {i}: {n:,}" for i, n in sorted(restored.items())) + ")"
        if problems:
            text += "; not restored: " + "; ".join(problems)
        if restored:
            self._reuse_from = (plan.log_file, log_size(plan.log_file))
        return self._emit("up", text, state.pid)

    def await_reuse(self, timeout: float, stop: Callable[[], bool] = lambda: False) -> ServerState | None:
        """After a restart that restored slots: wait for the next request and say how much it reused."""
        if self._reuse_from is None:
            return None
        check = await_reuse(*self._reuse_from, timeout, stop)
        if check is None and stop():
            return None
        text = check.describe() if check else f"no request reached the server within {timeout:.0f} s"
        return self._emit("verified", text)

    def _launch(self, plan: LaunchPlan, up_phase: str = "up") -> ServerState:
        if not Path(plan.model).expanduser().exists():
            message = f"model file {plan.model} does not exist"
        else:
            message = ""
        plan.log_file.parent.mkdir(parents=True, exist_ok=True)
        if flag_value(plan.args, SLOT_SAVE_FLAG) == str(slot_save_dir()):
            ensure_slot_save_dir()  # llama-server does not create it
        plan.log_file.write_text(
            ""
        )  # llama-server truncates it too; this drops a previous run's errors early
        stderr_path = data_dir() / "llama-server.stderr"
        stderr_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "NO_COLOR": "1"}
        env.pop("LLAMA_API_KEY", None)
        if plan.api_key:
            env["LLAMA_API_KEY"] = plan.api_key  # by environment, so the key never shows in `ps`
        self._emit("starting", f"starting {plan.command}" + (f" ({message})" if message else ""))
        with stderr_path.open("wb") as stderr:
            proc = subprocess.Popen(
                list(plan.args),
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        record = PidRecord(
            proc.pid,
            procfs.start_time(proc.pid),
            plan.port,
            plan.host,
            plan.model,
            plan.ctx_size,
            plan.parallel,
            str(plan.log_file),
            plan.command,
            time.time(),
        )
        write_pid_record(record)
        state = self._wait_healthy(proc, plan, stderr_path, up_phase)
        record_outcome("up" if state.phase == up_phase else state.phase, state.message, state.error_lines)
        return state

    def _wait_healthy(
        self, proc: subprocess.Popen[bytes], plan: LaunchPlan, stderr_path: Path, up_phase: str
    ) -> ServerState:
        deadline = time.monotonic() + self.health_timeout
        phase = "starting"
        while True:
            code = proc.poll()
            if code is not None:
                clear_pid_record()
                self._children.pop(proc.pid, None)
                lines = error_lines(plan.log_file, stderr_path)
                first = lines[0] if lines else "no error line in the log"
                return self._emit("failed", f"llama-server exited with code {code}: {first}", proc.pid, lines)
            health = probe_health(self.url, timeout=1.0)
            if health == "up":
                props = fetch_props(self.url, plan.api_key) or {}
                n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
                slots = props.get("total_slots")
                return self._emit(
                    up_phase, f"llama-server up at {self.url}: {slots} slot(s) × {n_ctx} tokens", proc.pid
                )
            if health == "loading" and phase != "loading":
                phase = "loading"
                self._emit("loading", f"loading {plan.model}", proc.pid)
            if time.monotonic() > deadline:
                lines = error_lines(plan.log_file, stderr_path)
                return self._emit(
                    "failed",
                    f"not healthy after {self.health_timeout:.0f} s; still running as pid {proc.pid}",
                    proc.pid,
                    lines,
                )
            time.sleep(0.1)
