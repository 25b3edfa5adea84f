"""Findings, forecast and status line over journals the real proxy wrote from Claude-Code-shaped traffic."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.held_journals import MCP, SESSION, HeldJournal, write_held_journal
from support.llama import RunningServer, start_llama_server

from tui.commands import findings_cmd, requests_cmd
from tui.core.config import ProxySettings, Settings
from tui.core.journal.reader import JournalReader
from tui.core.transforms.pipeline import run_transforms
from tui.core.transforms.settings import TransformSettings

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]

N_CTX = 16_384
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def held(
    tmp_path_factory: pytest.TempPathFactory, llama_server_bin: Path, tiny_model: Path
) -> Iterator[tuple[RunningServer, HeldJournal, HeldJournal]]:
    """One server kept up for the module, a journal with stored bodies and one without."""
    workdir = tmp_path_factory.mktemp("insight")
    server = start_llama_server(llama_server_bin, tiny_model, workdir / "server", ctx_size=N_CTX)
    try:
        with_bodies = write_held_journal(server.url, workdir / "bodies.sqlite3", N_CTX)
        server.stop()
        server = start_llama_server(llama_server_bin, tiny_model, workdir / "server2", ctx_size=N_CTX)
        without = write_held_journal(server.url, workdir / "plain.sqlite3", N_CTX, store_bodies=False)
        yield server, with_bodies, without
    finally:
        server.stop()


def run_cli(module: Any, argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="ctxbudget")
    module.register(parser.add_subparsers(dest="command"), parser)
    args = parser.parse_args(argv)
    return int(args.func(args, settings))


def findings_json(server: RunningServer, journal: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    settings = Settings(proxy=ProxySettings(upstream=server.url))
    assert run_cli(findings_cmd, ["findings", "--json", "--journal", str(journal)], settings) == 0
    return dict(json.loads(capsys.readouterr().out))


def by_kind(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in report["findings"] if f["kind"] == kind]


def test_unused_mcp_servers_are_named_with_their_per_request_cost(
    held: tuple[RunningServer, HeldJournal, HeldJournal], capsys: pytest.CaptureFixture[str]
) -> None:
    server, journal, _ = held
    assert journal.statuses[-1] == 400 and set(journal.statuses[:-1]) == {200}
    report = findings_json(server, journal.path, capsys)
    assert report["session"] == SESSION
    rows = [r for r in JournalReader(journal.path).latest(50) if r.status == 200 and r.anatomy]
    carrying = [r for r in rows if r.anatomy and r.anatomy.mcp_servers]
    latest = carrying[-1].anatomy
    assert latest is not None
    unused = {f["data"]["server"]: f["data"] for f in by_kind(report, "mcp_unused")}
    assert set(unused) == set(MCP)  # both servers, never the (helpers) that come with them
    for name, data in unused.items():
        assert data["tools"] == len(MCP[name])
        assert data["tokens_per_request"] == latest.mcp_servers[name]["tokens"] > 0
        assert data["saved_per_request"] == data["tokens_per_request"]
        assert data["requests"] == len(carrying)
        assert 0 < data["reprefill_tokens"] < (carrying[-1].prompt_tokens or 0)


def test_overflow_comes_first_with_the_slot_size_and_the_fix(
    held: tuple[RunningServer, HeldJournal, HeldJournal], capsys: pytest.CaptureFixture[str]
) -> None:
    server, journal, _ = held
    report = findings_json(server, journal.path, capsys)
    first = report["findings"][0]
    assert first["kind"] == "overflow"
    failed = [r for r in JournalReader(journal.path).latest(50) if r.status == 400]
    assert first["data"]["requests"] == [r.id for r in failed]
    assert first["data"]["n_ctx"] == N_CTX  # asked from the running server's /props
    assert first["data"]["largest_prompt"] == failed[0].usage.prompt_tokens > N_CTX
    assert "exceed_context_size_error" in first["title"] and "ctxbudget env" in first["apply"]


def test_cache_break_is_costed_and_its_fix_really_prevents_it(
    held: tuple[RunningServer, HeldJournal, HeldJournal], capsys: pytest.CaptureFixture[str]
) -> None:
    server, journal, _ = held
    report = findings_json(server, journal.path, capsys)
    (breaks,) = by_kind(report, "cache_breaks")
    data = breaks["data"]
    assert data["cause"] == "system prompt" and data["avoidable"]
    reader = JournalReader(journal.path)
    rows = {r.id: r for r in reader.latest(50)}
    (broken,) = data["requests"]
    row = rows[broken]
    assert data["tokens"] == (row.usage.prompt_tokens or 0) - (row.usage.cached_tokens or 0) > 0
    assert report["prompt_per_second"] and data["seconds"] == round(
        data["tokens"] / report["prompt_per_second"], 1
    )
    assert "'todays_date'" in data["prevention"][0]
    # The named built-in really makes the two system prompts equal.
    before = max(i for i, r in rows.items() if i < broken and r.kind == "main")
    settings = TransformSettings(stabilizer_builtins=["todays_date"])
    bodies = [json.loads(reader.body(i) or b"") for i in (before, broken)]
    stabilized = [run_transforms(b, "anthropic", ["stabilize"], settings)[0]["system"] for b in bodies]
    assert bodies[0]["system"] != bodies[1]["system"] and stabilized[0] == stabilized[1]


def test_slim_results_saving_is_measured_on_stored_bodies_only(
    held: tuple[RunningServer, HeldJournal, HeldJournal], capsys: pytest.CaptureFixture[str]
) -> None:
    server, journal, plain = held
    (measured,) = by_kind(findings_json(server, journal.path, capsys), "tool_results")
    data = measured["data"]
    assert data["slim_results_saved"] > 0 and measured["tokens_saved"] == data["slim_results_saved"]
    assert data["slim_by_tool"]["Bash"] == data["slim_results_saved"]  # Read outputs are skipped
    assert data["repeated_tokens"] > 0 and any("repeated identical outputs" in x for x in measured["lines"])
    (unmeasured,) = by_kind(findings_json(server, plain.path, capsys), "tool_results")
    assert unmeasured["data"]["slim_results_saved"] is None and unmeasured["tokens_saved"] == 0
    assert any("cannot be measured" in x and "store_bodies" in x for x in unmeasured["lines"])


def test_requests_json_carries_a_forecast_from_the_session_growth(
    held: tuple[RunningServer, HeldJournal, HeldJournal],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, journal, _ = held
    monkeypatch.delenv("CLAUDE_CODE_AUTO_COMPACT_WINDOW", raising=False)
    monkeypatch.delenv("CLAUDE_CODE_MAX_CONTEXT_TOKENS", raising=False)
    settings = Settings(proxy=ProxySettings(upstream=server.url))
    assert run_cli(requests_cmd, ["requests", "--json", "--journal", str(journal.path)], settings) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    mains = [x for x in lines if x["kind"] == "main" and x["status"] == 200]
    prompts = [x["usage"]["prompt_tokens"] for x in mains]
    newest = lines[-1]["forecast"]
    per_turn = round((prompts[-1] - prompts[0]) / (len(prompts) - 1))
    assert newest["per_turn"] == per_turn and newest["n_ctx"] == N_CTX
    assert newest["turns_to_full"] == -(-(N_CTX - prompts[-1]) // per_turn)
    assert newest["compact_at"] is None  # a 16k window leaves Claude Code no auto-compact threshold


def test_statusline_prints_the_session_gauge_from_a_fresh_interpreter(
    held: tuple[RunningServer, HeldJournal, HeldJournal], tmp_path: Path
) -> None:
    server, journal, _ = held
    stdin = json.dumps({"session_id": SESSION, "model": {"id": "claude-sonnet-4-5"}, "transcript_path": "/x"})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_", "CTXBUDGET"))}
    env.update(
        HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_DATA_HOME=str(tmp_path / "data")
    )
    argv = ["statusline", "--journal", str(journal.path), "--upstream", server.url]
    out = subprocess.run(
        [sys.executable, "-m", "tui.launch", *argv], input=stdin, capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    rows = [r for r in JournalReader(journal.path).latest(50) if r.kind == "main" and r.status == 200]
    newest = rows[-1]
    assert newest.anatomy is not None and newest.prompt_tokens is not None
    prompt, mcp = newest.prompt_tokens, newest.anatomy.categories["mcp_tools"] / newest.anatomy.total_tokens
    reuse = (newest.usage.cached_tokens or 0) / prompt
    assert out.stdout.startswith(
        f"ctx {prompt / 1000:.1f}k/{N_CTX / 1000:.1f}k {prompt / N_CTX:.0%} | "
        f"reuse {reuse:.0%} | MCP {mcp:.0%} | ~"
    ), out.stdout
    assert out.stdout.count("\n") == 1


async def test_findings_pane_lists_the_session_findings(
    held: tuple[RunningServer, HeldJournal, HeldJournal],
) -> None:
    from textual.app import App
    from textual.widgets import Static

    from tui.ui.screens.findings import FindingsScreen

    server, journal, _ = held
    screen = FindingsScreen(journal.path, SESSION[:8], Settings(proxy=ProxySettings(upstream=server.url)))
    app: App[None] = App()
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(screen)
        await screen.workers.wait_for_complete()
        await pilot.pause()
        text = str(screen.query_one("#findings-body", Static).render())
    assert text.splitlines()[0].startswith(f"session {SESSION}:")
    assert "1. 1 request overflowed the 16,384-token slot" in text
    assert "MCP server filesystem: 5 tools never called" in text and "MCP server memory" in text


def test_history_share_names_what_a_compaction_frees(
    held: tuple[RunningServer, HeldJournal, HeldJournal], capsys: pytest.CaptureFixture[str]
) -> None:
    server, journal, _ = held
    (history,) = by_kind(findings_json(server, journal.path, capsys), "history")
    rows = [r for r in JournalReader(journal.path).latest(50) if r.kind == "main" and r.status == 200]
    newest = rows[-1].anatomy
    assert newest is not None and history["data"]["request"] == rows[-1].id
    cats = newest.categories
    held_back = cats["history"] + cats["thinking"] + cats["tool_calls"] + cats["tool_results"]
    assert history["data"]["history_tokens"] == held_back == history["tokens_saved"]
    assert history["data"]["share"] == round(held_back / newest.total_tokens, 3) >= 0.4
    assert f"of a {N_CTX:,}-token slot" in history["lines"][0] and "ctxbudget compact" in history["apply"]
