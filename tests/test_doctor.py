"""`ctxbudget doctor`: every check's pass/warn/fail path, on planned launches and real running servers."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from support.llama import StartServer, free_port
from support.tiny_models import TinyShape, write_dense_model
from test_gpu import FakeNVML

from tui.commands import doctor_cmd
from tui.core.config import Settings, settings_from_dict
from tui.core.doctor import (
    CheckResult,
    DoctorFacts,
    diagnose,
    exit_code,
    render_json,
    render_text,
    run_checks,
)
from tui.core.doctor.agent_need import CLAUDE_WINDOW_ENV
from tui.core.doctor.checks import check_memory

DEAD_URL = f"http://127.0.0.1:{free_port()}"
# No journal: the agent's smallest request falls back to Claude Code's typical first request.
NO_JOURNAL = "/nonexistent/ctxbudget-doctor-test/journal.sqlite3"


@pytest.fixture(autouse=True)
def no_exported_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks read the agent's exported window: the developer's shell must not leak in."""
    for name in CLAUDE_WINDOW_ENV:
        monkeypatch.delenv(name, raising=False)


def settings(
    server: dict[str, Any] | None = None, agent: dict[str, Any] | None = None, journal: str = NO_JOURNAL
) -> Settings:
    data: dict[str, Any] = {"server": {"url": DEAD_URL, **(server or {})}, "journal": {"path": journal}}
    if agent is not None:
        data["agent"] = agent
    return settings_from_dict(data)


def by_check(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {r.check: r for r in results}


async def planned(cfg: Settings, nvml: Any | None = None, **overrides: Any) -> dict[str, CheckResult]:
    _, results = await diagnose(cfg, nvml=nvml, **overrides)
    return by_check(results)


@pytest.fixture(scope="module")
def h32_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shape = TinyShape(n_embd=128, n_layer=2, n_head=4, n_head_kv=2, n_ff=128)
    return write_dense_model(tmp_path_factory.mktemp("h32") / "h32.gguf", shape=shape, n_ctx_train=32768)


async def test_nothing_to_check_fails() -> None:
    results = await planned(settings())
    assert results["server"].status == "fail" and "not reachable" in results["server"].message
    assert results["model"].status == "fail" and "--model" in results["model"].fix
    assert exit_code(list(results.values())) == 1


async def test_planned_launch_that_fits(tiny_model: Path, tmp_path: Path) -> None:
    journal = journal_with_main_request(tmp_path / "j.sqlite3", 4_000)  # the agent's smallest request
    cfg = settings(
        {"model": str(tiny_model), "ctx_size": 16384, "parallel": 1}, {"context_window": 12000}, journal
    )
    results = await planned(cfg)
    assert results["server"].status == "warn" and "planned launch only" in results["server"].message
    assert results["model"].status == "pass" and "llama" in results["model"].message
    assert results["train_context"].status == "pass"
    assert results["slot_split"].status == "pass" and "1 slot" in results["slot_split"].message
    assert results["v_cache"].status == "pass"
    assert results["agent_window"].status == "pass"
    assert results["memory"].status == "pass"


async def test_train_context_and_split_warnings(swa_model: Path) -> None:
    cfg = settings({"model": str(swa_model)})
    results = await planned(cfg, ctx_size=400_000, parallel=2)
    train = results["train_context"]
    assert train.status == "warn" and "131,072" in train.message and "-c 262144" in train.fix
    split = results["slot_split"]
    assert split.status == "warn" and "each request gets 200,192" in split.message
    auto = await planned(cfg, ctx_size=32768, parallel=0)
    assert auto.get("slot_split") and auto["slot_split"].status == "pass"
    assert "unified" in auto["slot_split"].message


async def test_agent_window_paths(tiny_model: Path, tmp_path: Path) -> None:
    base = {"model": str(tiny_model), "ctx_size": 8192, "parallel": 1}
    first = (await planned(settings(base)))["agent_window"]
    assert first.status == "fail" and "smallest request is 28,000" in first.message
    assert first.fix == "raise -c so each slot holds at least 28,000 tokens (-c 28000)"  # n_ctx_train 262k
    journal = journal_with_main_request(tmp_path / "j.sqlite3", 3_000)
    claude = (await planned(settings(base, journal=journal)))["agent_window"]
    assert claude.status == "fail" and "200,000" in claude.message
    assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW=8192" in claude.fix
    small = (await planned(settings(base, {"context_window": 2000}, journal)))["agent_window"]
    assert small.status == "warn"
    unknown = (await planned(settings(base, {"client": "codex"})))["agent_window"]
    assert unknown.status == "warn" and "context_window" in unknown.fix


async def test_v_cache_paths(tiny_model: Path, h32_model: Path) -> None:
    quant = {
        "model": str(h32_model),
        "ctx_size": 4096,
        "parallel": 1,
        "cache_type_k": "q8_0",
        "cache_type_v": "q8_0",
    }
    off = (await planned(settings({**quant, "flash_attn": "off"})))["v_cache"]
    assert off.status == "fail" and "-fa on" in off.fix
    auto = (await planned(settings(quant)))["v_cache"]
    assert auto.status == "pass" and "q8_0" in auto.message
    head16 = (await planned(settings({**quant, "model": str(tiny_model)})))["v_cache"]
    assert head16.status == "fail" and "head size" in head16.message
    bogus = (await planned(settings({**quant, "cache_type_v": "q3_k"})))["v_cache"]
    assert bogus.status == "fail" and "q8_0" in bogus.fix


@pytest.mark.llama
async def test_head_size_failure_matches_the_real_server(llama_server: StartServer, tiny_model: Path) -> None:
    """The doctor's head-size failure is what llama-server itself refuses to start with."""
    with pytest.raises(Exception, match="block size 32 does not divide"):
        llama_server(tiny_model, extra_args=("-ctk", "q8_0"))


async def test_memory_against_fake_vram(tiny_model: Path) -> None:
    cfg = settings({"model": str(tiny_model), "ctx_size": 8192, "parallel": 1})
    facts, _ = await diagnose(cfg, nvml=FakeNVML(server_pid=1))
    assert check_memory(facts).status == "pass" and "free VRAM" in check_memory(facts).message
    assert facts.gpu is not None and facts.kv is not None and facts.gguf is not None
    need = facts.kv.total_bytes + facts.gguf.file_size
    tight = dataclasses.replace(facts.gpu.devices[0], mem_used=0, mem_total=need + 10 * 1024 * 1024)
    gpu_tight = dataclasses.replace(facts.gpu, devices=(tight,))
    assert check_memory(dataclasses.replace(facts, gpu=gpu_tight)).status == "warn"
    full = dataclasses.replace(tight, mem_total=need - 1)
    result = check_memory(dataclasses.replace(facts, gpu=dataclasses.replace(facts.gpu, devices=(full,))))
    assert result.status == "fail" and "-ctk q8_0" in result.fix


async def test_memory_without_gpu_uses_ram(tiny_model: Path) -> None:
    cfg = settings({"model": str(tiny_model), "ctx_size": 8192, "parallel": 1})
    facts, _ = await diagnose(cfg)
    result = check_memory(facts)
    if facts.gpu is not None and not facts.gpu.available:
        assert result.status == "pass" and result.message.startswith("no NVIDIA GPU (NVML:")
        assert "RAM" in result.message
    starved = dataclasses.replace(
        facts, mem_available=1024, gpu=dataclasses.replace(facts.gpu, available=False) if facts.gpu else None
    )
    assert check_memory(starved).status == "fail"


async def test_log_checks(tmp_path: Path, tiny_model: Path) -> None:
    base = {"model": str(tiny_model), "ctx_size": 8192, "parallel": 1}
    none = (await planned(settings(base)))["log"]
    assert none.status == "warn" and "--log-file" in none.fix
    missing = (await planned(settings({**base, "log_file": str(tmp_path / "nope.log")})))["log"]
    assert missing.status == "warn" and "not found" in missing.message


@pytest.mark.llama
async def test_running_server_with_trace_log(llama_server: StartServer) -> None:
    server = llama_server(ctx_size=8192, parallel=2)
    server.wait_for_log("n_ctx_slot")
    agent = {"client": "opencode", "context_window": 4000}  # Claude Code's first request needs more than 4k
    cfg = settings({"url": server.url, "log_file": str(server.log_path)}, agent)
    facts, results = await diagnose(cfg)
    checks = by_check(results)
    assert facts.mode == "running"
    assert checks["server"].status == "pass" and "2 slot(s) × 4,096" in checks["server"].message
    assert checks["model"].status == "pass"  # read from /props model_path
    assert checks["slot_split"].status == "warn" and "each request gets 4,096" in checks["slot_split"].message
    assert checks["log"].status == "pass"
    assert checks["agent_window"].status == "pass"
    assert facts.kv is not None and facts.kv.plan.n_ctx == 8192  # from the log's n_ctx line
    assert exit_code(results) == 0


@pytest.mark.llama
async def test_running_server_with_default_verbosity(llama_server: StartServer) -> None:
    server = llama_server(extra_args=("-lv", "3"))
    server.wait_for_log("listening on")
    cfg = settings({"url": server.url, "log_file": str(server.log_path)})
    checks = by_check((await diagnose(cfg))[1])
    assert checks["log"].status == "warn" and "-lv 4" in checks["log"].fix
    assert checks["agent_window"].status == "fail"  # Claude Code's 200k vs an 8k slot


@pytest.mark.llama
async def test_running_server_wrong_api_key(llama_server: StartServer) -> None:
    server = llama_server(api_key="right-key")
    cfg = settings_from_dict({"server": {"url": server.url, "api_key": "wrong-key"}})
    checks = by_check((await diagnose(cfg))[1])
    assert checks["server"].status == "fail" and "api_key" in checks["server"].fix


@pytest.mark.llama
def test_cli_json_and_exit_code(
    llama_server: StartServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = llama_server(ctx_size=8192, parallel=1)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nurl = "{server.url}"\n[agent]\ncontext_window = 6000\n[journal]\npath = "{NO_JOURNAL}"\n'
    )
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    doctor_cmd.register(parser.add_subparsers(), parser)
    args = parser.parse_args(["doctor", "--config", str(config), "--json"])
    from tui.core.config import load_settings

    code = args.func(args, load_settings(args.config))
    items = json.loads(capsys.readouterr().out)
    assert [i["check"] for i in items][:2] == ["server", "model"]
    assert all(set(i) == {"check", "status", "message", "fix"} for i in items)
    assert code == (1 if any(i["status"] == "fail" for i in items) else 0)
    model = str(server.model_path)
    args = parser.parse_args(["doctor", "--config", str(config), "--model", model, "--ctx-size", "300000"])
    code = args.func(args, load_settings(args.config))
    text = capsys.readouterr().out
    assert text.startswith("ctxbudget doctor: planned launch")
    assert "WARN  train_context" in text and "fix: use -c 262144" in text
    assert code == 0  # warnings only


def test_render_text_and_json() -> None:
    results = [CheckResult("a", "pass", "fine"), CheckResult("bb", "fail", "broken", "do this")]
    text = render_text(results)
    assert "PASS  a   fine" in text and "FAIL  bb  broken" in text and "fix: do this" in text
    assert json.loads(render_json(results))[1] == {
        "check": "bb",
        "status": "fail",
        "message": "broken",
        "fix": "do this",
    }
    assert exit_code(results) == 1 and exit_code(results[:1]) == 0


def test_checks_are_pure_functions_of_facts() -> None:
    from tui.core.doctor.model import Launch

    facts = DoctorFacts(launch=Launch(url=DEAD_URL), mode="planned")
    results = by_check(run_checks(facts))
    assert results["model"].status == "fail" and results["memory"].message == "skipped: no model to size"
    assert results["server"].status == "skip"  # not contacted: never a pass
    assert results["train_context"].status == "skip" and results["agent_window"].status == "skip"
    assert "SKIP  memory" in render_text(run_checks(facts)) and exit_code(run_checks(facts)) == 1


def journal_with_main_request(path: Path, prompt_tokens: int) -> str:
    """A journal holding one main request of `prompt_tokens` server tokens (what the agent sent)."""
    from test_journal import make_exchange, make_result

    from tui.core.journal.writer import Journal
    from tui.core.records import Usage

    journal = Journal(path)
    result = dataclasses.replace(make_result(0), usage=Usage(prompt_tokens=prompt_tokens, cached_tokens=0))
    journal.append(make_exchange(0), result)
    journal.close()
    return str(path)


@pytest.mark.llama
async def test_smollm2_slot_capped_by_n_ctx_train_gets_the_right_advice(
    llama_server: StartServer, real_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = llama_server(real_model, ctx_size=16384)  # -c above SmolLM2's n_ctx_train 8192
    server.wait_for_log("n_ctx_slot")
    server_cfg = {"url": server.url, "log_file": str(server.log_path)}
    checks = by_check((await diagnose(settings(server_cfg)))[1])
    train, window = checks["train_context"], checks["agent_window"]
    assert train.status == "warn" and "caps each slot at 8,192" in train.message
    # Claude Code's first request (~28k) cannot fit: no agent window helps and -c cannot pass the cap.
    assert window.status == "fail" and "smallest request is 28,000" in window.message
    assert "(the model's n_ctx_train 8,192 caps it: a larger -c cannot help)" in window.message
    assert "--override-kv llama.context_length=int:32768" in window.fix and "raise -c" not in window.fix
    assert "CLAUDE_CODE_AUTO_COMPACT_WINDOW" not in window.fix

    # Measured from the journal: this agent's requests fit, only its assumed window does not.
    journal = journal_with_main_request(tmp_path / "j.sqlite3", 3_000)
    window = by_check((await diagnose(settings(server_cfg, journal=journal)))[1])["agent_window"]
    assert window.status == "fail" and "200,000" in window.message
    assert window.fix.startswith("export CLAUDE_CODE_AUTO_COMPACT_WINDOW=8192")
    # Following the doctor's own fix clears the check.
    monkeypatch.setenv("CLAUDE_CODE_AUTO_COMPACT_WINDOW", "8192")
    window = by_check((await diagnose(settings(server_cfg, journal=journal)))[1])["agent_window"]
    assert window.status == "pass" and "$CLAUDE_CODE_AUTO_COMPACT_WINDOW" in window.message
    assert "smallest request 3,000 fits" in window.message


@pytest.mark.llama
async def test_override_kv_in_extra_args_lifts_the_cap_as_the_real_server_does(
    llama_server: StartServer, real_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stretch = ["--override-kv", "llama.context_length=int:32768", "--rope-scaling", "yarn",
               "--rope-scale", "4", "--yarn-orig-ctx", "8192"]
    planned_cfg = {"model": str(real_model), "ctx_size": 32768, "parallel": 1, "extra_args": stretch}
    checks = await planned(settings(planned_cfg))
    assert checks["train_context"].status == "pass" and "32,768" in checks["train_context"].message
    window = checks["agent_window"]
    assert window.status == "fail" and "each slot holds 32,768" in window.message
    monkeypatch.setenv("CLAUDE_CODE_AUTO_COMPACT_WINDOW", "32768")
    assert (await planned(settings(planned_cfg)))["agent_window"].status == "pass"
    # The real server, started as the doctor advises, gives each slot the stretched window.
    server = llama_server(real_model, ctx_size=32768, extra_args=stretch)
    with server.client() as client:
        props = client.get("/props").json()
    assert props["default_generation_settings"]["n_ctx"] == 32768
