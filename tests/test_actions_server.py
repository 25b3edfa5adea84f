"""Server control against the real llama-server: start, status, restart with new sizes, failures."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import httpx
import pytest
from support.llama import StartServer

from tui.commands import server_cmd
from tui.core import procfs
from tui.core.actions.server_control import PreflightError, ServerController, ServerState
from tui.core.actions.server_launch import build_launch, pid_path, read_pid_record
from tui.core.config import ServerSettings, Settings


@dataclasses.dataclass(frozen=True)
class PlannedServer(ServerSettings):
    """ServerSettings plus the options this area asks the lead to add."""

    binary: str = ""
    port: int = 0
    jinja: bool = True
    extra_args: list[str] = dataclasses.field(default_factory=list)
    stop_timeout: float = 10.0


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv("CTXBUDGET_DATA_DIR", str(folder))
    return folder


def make_settings(binary: Path, model: Path, port: int, log: Path, **server: object) -> Settings:
    planned = PlannedServer(
        url=f"http://127.0.0.1:{port}",
        model=str(model),
        ctx_size=2048,
        parallel=1,
        log_file=str(log),
        binary=str(binary),
        extra_args=["-t", "1", "-n", "16"],
        **server,  # type: ignore[arg-type]
    )
    return dataclasses.replace(Settings(), server=planned)


def props(url: str) -> dict[str, object]:
    data: dict[str, object] = httpx.get(url + "/props", timeout=5).json()
    return data


def test_launch_always_has_log_and_metrics_flags(
    llama_server_bin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    settings = make_settings(llama_server_bin, tiny_model, 18080, tmp_path / "s.log", api_key="secret")
    plan = build_launch(settings, ctx_size=4096, parallel=2)
    args = list(plan.args)
    for flag in ("--log-file", "--log-colors", "-lv", "--metrics", "--jinja"):
        assert flag in args
    assert args[args.index("-lv") + 1] == "4" and args[args.index("--log-colors") + 1] == "off"
    assert args[args.index("-c") + 1] == "4096" and args[args.index("-np") + 1] == "2"
    assert "secret" not in plan.command  # the key travels by environment


def test_start_status_restart_stop(
    llama_server_bin: Path, tiny_model: Path, free_port: int, tmp_path: Path
) -> None:
    settings = make_settings(llama_server_bin, tiny_model, free_port, tmp_path / "server.log")
    states: list[ServerState] = []
    controller = ServerController(settings, on_state=states.append, health_timeout=60)
    try:
        first = controller.start()
        assert first.phase == "up", first
        assert props(controller.url)["default_generation_settings"]["n_ctx"] == 2048  # type: ignore[index]
        record = read_pid_record()
        assert record is not None and record.pid == first.pid

        # Another process (a fresh controller) sees the server as ours.
        status = ServerController(settings).status()
        assert (status.phase, status.owned, status.pid, status.n_ctx_slot) == ("up", True, first.pid, 2048)

        states.clear()
        second = controller.restart(ctx_size=4096, force=True)  # the doctor already ran on start()
        assert second.phase == "up", second
        phases = [s.phase for s in states]
        assert phases[0] == "stopping" and "starting" in phases and phases[-1] == "up"
        assert props(controller.url)["default_generation_settings"]["n_ctx"] == 4096  # type: ignore[index]
        assert first.pid is not None and not procfs.is_alive(first.pid)
        assert (
            "new prompt" in Path(settings.server.log_file).read_text()
            or (tmp_path / "server.log").stat().st_size
        )

        # The CLI reports the same state.
        args = argparse.Namespace(action="status", ctx_size=None, parallel=None, force=False, json=False)
        assert server_cmd.run_server(args, settings) == 0
    finally:
        stopped = controller.stop()
    assert stopped.phase == "down"
    assert not pid_path().exists()
    assert ServerController(settings).status().phase == "down"


def test_bad_model_is_refused_then_fails_with_log_errors(
    llama_server_bin: Path, tiny_model: Path, free_port: int, tmp_path: Path
) -> None:
    good = make_settings(llama_server_bin, tiny_model, free_port, tmp_path / "server.log")
    controller = ServerController(good, health_timeout=60)
    up = controller.start()
    assert up.phase == "up"
    bad_model = tmp_path / "missing.gguf"
    bad = make_settings(llama_server_bin, bad_model, free_port, tmp_path / "server.log")
    states: list[ServerState] = []
    bad_controller = ServerController(bad, on_state=states.append, health_timeout=60)
    try:
        with pytest.raises(PreflightError, match="model"):
            bad_controller.restart()
        # Refused before stopping anything: the old server still answers.
        assert ServerController(good).status().phase == "up"

        failed = bad_controller.restart(force=True)
        assert failed.phase == "failed"
        assert any("failed to load model" in line for line in failed.error_lines), failed.error_lines
        assert "exited with code" in failed.message and "missing.gguf" in failed.message
        assert up.pid is not None and not procfs.is_alive(up.pid)
        status = ServerController(bad).status()
        assert status.phase == "down" and not status.owned
        assert "last start failed" in status.describe() and "failed to load model" in status.describe()
    finally:
        controller.stop()


def test_restart_replaces_a_foreign_server(
    llama_server: StartServer, llama_server_bin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    foreign = llama_server(ctx_size=1024)
    settings = make_settings(llama_server_bin, tiny_model, foreign.port, tmp_path / "server.log")
    states: list[ServerState] = []
    controller = ServerController(settings, on_state=states.append, health_timeout=60)
    status = controller.status()
    assert status.phase == "up" and not status.owned and foreign.proc.pid in status.foreign_pids
    try:
        result = controller.restart(force=True)
        assert result.phase == "up", result
        assert any("not started by ctxbudget" in s.message for s in states)
        assert foreign.proc.wait(timeout=10) is not None
        assert props(controller.url)["default_generation_settings"]["n_ctx"] == 2048  # type: ignore[index]
        assert controller.status().owned
    finally:
        controller.stop()
