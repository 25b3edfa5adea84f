"""Restart keeps the prompt cache, against the real llama-server: saved slots come back, what cannot work
is refused before anything is stopped, and what b11434 does with a sliding-window model."""

from __future__ import annotations

import argparse
import dataclasses
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.llama import StartServer

from tui.commands import server_cmd
from tui.core import procfs
from tui.core.actions.reuse_check import first_reuse
from tui.core.actions.server_control import ServerController, ServerState
from tui.core.actions.server_launch import build_launch
from tui.core.actions.slot_cache import (
    SlotCacheError,
    SlotInfo,
    planned_slot_ctx,
    refusal_reason,
    slot_save_dir,
)
from tui.core.config import ServerSettings, Settings

SYSTEM = "You are a careful assistant. " + " ".join(
    f"rule{i} keeps item{i % 37} in order." for i in range(140)
)


def settings_for(
    binary: Path, model: Path, port: int, log: Path, ctx_size: int = 8192, extra: tuple[str, ...] = ()
) -> Settings:
    server = ServerSettings(
        url=f"http://127.0.0.1:{port}",
        model=str(model),
        ctx_size=ctx_size,
        parallel=1,
        log_file=str(log),
        binary=str(binary),
        extra_args=["-t", "1", "-n", "8", *extra],
    )
    return dataclasses.replace(Settings(), server=server)


def conversation(topic: str = "") -> list[dict[str, str]]:
    """A ~2k-token agent-like conversation (system prompt, earlier turns, a new question)."""
    turns: list[dict[str, str]] = [{"role": "system", "content": topic + SYSTEM}]
    for i in range(6):
        turns.append(
            {"role": "user", "content": f"step {i}: " + " ".join(f"file{i}_{j}.py" for j in range(40))}
        )
        turns.append({"role": "assistant", "content": f"done step {i}: " + "ok " * 30})
    turns.append({"role": "user", "content": "what is next?"})
    return turns


def ask(url: str, slot: int | None = None, topic: str = "") -> dict[str, Any]:
    """Send the conversation (to one slot when given); returns the response's timings (prompt_n, cache_n)."""
    body: dict[str, Any] = {"messages": conversation(topic), "max_tokens": 4, "temperature": 0}
    body |= {"cache_prompt": True} if slot is None else {"cache_prompt": True, "id_slot": slot}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=120)
    assert response.status_code == 200, response.text
    timings: dict[str, Any] = response.json()["timings"]
    return timings


def reuse(timings: dict[str, Any]) -> float:
    """Share of the prompt served from the cache."""
    cached, fresh = int(timings.get("cache_n", 0)), int(timings["prompt_n"])
    return cached / (cached + fresh)


def cli_restart(settings: Settings, keep_cache: bool | None) -> int:
    args = argparse.Namespace(
        action="restart", ctx_size=None, parallel=None, force=True, json=False, keep_cache=keep_cache
    )
    return server_cmd.run_server(args, settings)


def test_restart_keeps_the_prompt_cache_and_no_keep_cache_drops_it(
    llama_server_bin: Path,
    tiny_model: Path,
    free_port: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = settings_for(llama_server_bin, tiny_model, free_port, tmp_path / "server.log")
    controller = ServerController(settings, health_timeout=60)
    try:
        assert controller.start(force=True).phase == "up"
        first = ask(controller.url)
        prompt = int(first["prompt_n"]) + int(first.get("cache_n", 0))
        assert 1500 <= prompt <= 3000, first

        # Default: keep the cache when possible; the CLI shows each step and the restored count.
        assert cli_restart(settings, None) == 0
        err = capsys.readouterr().err
        assert "[saving] saving slot 0" in err and "[restoring] restoring slot 0" in err, err
        restored_line = next(
            line for line in err.splitlines() if "restored" in line and line.startswith("[up]")
        )
        restored = int(restored_line.split("restored ")[1].split(" tokens")[0].replace(",", ""))
        assert restored >= prompt, restored_line
        assert stat.S_IMODE(slot_save_dir().stat().st_mode) == 0o700
        assert not list(slot_save_dir().iterdir())  # restored files are deleted

        after_keep = ask(controller.url)
        assert reuse(after_keep) >= 0.9, after_keep

        assert cli_restart(settings, False) == 0
        assert "saving" not in capsys.readouterr().err
        after_drop = ask(controller.url)
        assert reuse(after_drop) < 0.05, after_drop
    finally:
        controller.stop()


def test_every_slot_that_holds_a_prompt_is_kept(
    llama_server_bin: Path, tiny_model: Path, free_port: int, tmp_path: Path
) -> None:
    settings = settings_for(llama_server_bin, tiny_model, free_port, tmp_path / "server.log", ctx_size=16384)
    settings = dataclasses.replace(settings, server=dataclasses.replace(settings.server, parallel=2))
    modes: dict[str, int] = {}

    def files_at_stop(state: ServerState) -> None:
        if state.phase == "stopping":
            modes.update({p.name: stat.S_IMODE(p.stat().st_mode) for p in slot_save_dir().iterdir()})

    controller = ServerController(settings, on_state=files_at_stop, health_timeout=60)
    try:
        assert controller.start(force=True).phase == "up"
        ask(controller.url, slot=0, topic="Project alpha. ")
        ask(controller.url, slot=1, topic="Project beta. ")
        state = controller.restart(force=True)
        assert "(slot 0: " in state.message and ", slot 1: " in state.message, state
        assert modes == {"ctxbudget-slot0.bin": 0o600, "ctxbudget-slot1.bin": 0o600}  # private on disk
        for slot, topic in ((0, "Project alpha. "), (1, "Project beta. ")):
            assert reuse(ask(controller.url, slot=slot, topic=topic)) >= 0.9
    finally:
        controller.stop()


def test_refusals_are_said_before_anything_stops(
    llama_server_bin: Path, tiny_model: Path, swa_model: Path, free_port: int, tmp_path: Path
) -> None:
    settings = settings_for(llama_server_bin, tiny_model, free_port, tmp_path / "server.log")
    controller = ServerController(settings, health_timeout=60)
    try:
        up = controller.start(force=True)
        assert up.phase == "up"
        ask(controller.url)

        cases = {
            "the model changes": settings_for(
                llama_server_bin, swa_model, free_port, tmp_path / "server.log", extra=("--swa-full",)
            ),
            "gives a slot 1,024 tokens": settings_for(
                llama_server_bin, tiny_model, free_port, tmp_path / "server.log", ctx_size=1024
            ),
            "saves its slots elsewhere": settings_for(
                llama_server_bin,
                tiny_model,
                free_port,
                tmp_path / "server.log",
                extra=("--slot-save-path", str(tmp_path / "other slots")),
            ),
        }
        for expected, other in cases.items():
            with pytest.raises(SlotCacheError, match=expected):
                ServerController(other, health_timeout=60).restart(force=True, keep_cache=True)
            assert up.pid is not None and procfs.is_alive(up.pid)  # nothing was stopped

        # Without --keep-cache the same restart says why and goes on without the cache.
        states: list[ServerState] = []
        smaller = ServerController(
            cases["gives a slot 1,024 tokens"], on_state=states.append, health_timeout=60
        )
        assert smaller.restart(force=True).phase == "up"
        notes = [s.message for s in states if s.phase == "cache"]
        assert notes and "not keeping the prompt cache" in notes[0] and "1,024" in notes[0], notes
        assert states.index(next(s for s in states if s.phase == "cache")) < states.index(
            next(s for s in states if s.phase == "stopping")
        )
    finally:
        controller.stop()


def test_sliding_window_model_needs_swa_full(
    llama_server_bin: Path, swa_model: Path, free_port: int, tmp_path: Path
) -> None:
    plain = settings_for(llama_server_bin, swa_model, free_port, tmp_path / "server.log")
    controller = ServerController(plain, health_timeout=60)
    try:
        up = controller.start(force=True)
        assert up.phase == "up"
        ask(controller.url)
        with pytest.raises(SlotCacheError, match="sliding-window model .* no --swa-full"):
            controller.restart(force=True, keep_cache=True)
        assert up.pid is not None and procfs.is_alive(up.pid)

        full = settings_for(
            llama_server_bin, swa_model, free_port, tmp_path / "server.log", extra=("--swa-full",)
        )
        # The running server lacks --swa-full: its slot holds only the window, so it is refused too.
        with pytest.raises(SlotCacheError, match="running server was started without --swa-full"):
            ServerController(full, health_timeout=60).restart(force=True, keep_cache=True)

        full_controller = ServerController(full, health_timeout=60)
        assert full_controller.restart(force=True, keep_cache=False).phase == "up"
        ask(full_controller.url)
        state = full_controller.restart(force=True, keep_cache=True)
        assert "restored" in state.message and "not restored" not in state.message, state
        assert reuse(ask(full_controller.url)) >= 0.9
        verified = full_controller.await_reuse(10)  # the same fact, read from the server's log
        assert verified is not None and verified.phase == "verified", verified
        assert "the next request reused" in verified.message and "re-processed" not in verified.message
    finally:
        controller.stop()


def test_b11434_restores_an_swa_slot_but_reprocesses_it_without_swa_full(
    llama_server: StartServer, swa_model: Path, tmp_path: Path
) -> None:
    """What the README documents: the restore answers n_restored, yet the next request starts from 0."""
    save_dir = tmp_path / "slots"
    save_dir.mkdir()
    first = llama_server(swa_model, extra_args=["--slot-save-path", str(save_dir)])
    ask(first.url)
    saved = httpx.post(first.url + "/slots/0?action=save", json={"filename": "s.bin"}, timeout=60).json()
    first.stop()
    second = llama_server(swa_model, extra_args=["--slot-save-path", str(save_dir)])
    answer = httpx.post(second.url + "/slots/0?action=restore", json={"filename": "s.bin"}, timeout=60).json()
    assert answer["n_restored"] == saved["n_saved"] > 1500
    timings = ask(second.url)
    assert timings.get("cache_n", 0) == 0, timings
    assert "forcing full prompt re-processing" in second.log_text()
    check = first_reuse(second.log_path, 0)
    assert check is not None and check.n_cached == 0 and check.n_prompt > 1500
    assert "re-processed the whole prompt" in check.describe()


def test_launch_gets_a_slot_save_path_unless_the_user_set_one(
    llama_server_bin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    settings = settings_for(llama_server_bin, tiny_model, 18081, tmp_path / "s.log")
    args = list(build_launch(settings).args)
    assert args[args.index("--slot-save-path") + 1] == str(slot_save_dir())
    own = settings_for(
        llama_server_bin, tiny_model, 18081, tmp_path / "s.log", extra=("--slot-save-path", "/x")
    )
    args = list(build_launch(own).args)
    assert args.count("--slot-save-path") == 1 and args[args.index("--slot-save-path") + 1] == "/x"


def test_refusal_reason_logic(tiny_model: Path, swa_model: Path) -> None:
    slot = SlotInfo(id=1, n_ctx=4096, n_tokens=3000, busy=False)
    common: dict[str, Any] = {
        "running_model": str(tiny_model),
        "running_args": None,
        "new_model": str(tiny_model),
    }
    assert refusal_reason([slot], new_args=(), new_ctx_size=8192, new_parallel=2, **common) == ""
    assert "has 1 slot(s)" in refusal_reason([slot], new_args=(), new_ctx_size=8192, new_parallel=1, **common)
    assert "2,500 tokens" in refusal_reason([slot], new_args=(), new_ctx_size=5000, new_parallel=2, **common)
    assert refusal_reason([slot], new_args=("-kvu",), new_ctx_size=4000, new_parallel=2, **common) == ""
    assert planned_slot_ctx((), 0, 4) is None
    swa: dict[str, Any] = {
        "running_model": str(swa_model),
        "new_model": str(swa_model),
        "new_ctx_size": 0,
        "new_parallel": 2,
    }
    assert "window 64" in refusal_reason([slot], running_args=None, new_args=(), **swa)
    full = ("--swa-full",)
    assert refusal_reason([slot], running_args=full, new_args=full, **swa) == ""
    assert "the model changes" in refusal_reason(
        [slot], running_args=None, new_args=full, **{**swa, "running_model": str(tiny_model)}
    )


def test_foreign_server_without_slot_save_path_is_refused_before_stopping(
    llama_server: StartServer, llama_server_bin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    foreign = llama_server()  # started outside ctxbudget, no --slot-save-path
    ask(foreign.url)
    settings = settings_for(llama_server_bin, tiny_model, foreign.port, tmp_path / "server.log")
    controller = ServerController(settings, health_timeout=60)
    with pytest.raises(
        SlotCacheError, match="cannot keep the prompt cache: save of slot 0 answered"
    ) as caught:
        controller.restart(force=True, keep_cache=True)
    assert "nothing was stopped" in str(caught.value) and foreign.proc.poll() is None
