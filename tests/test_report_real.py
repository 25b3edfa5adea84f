"""`ctxbudget report` over a journal filled by real traffic through the proxy to a real llama-server."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.llama import start_llama_server

from tui.commands import report_cmd
from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, Settings
from tui.core.journal.writer import JournalReader
from tui.core.proxy.service import ProxyService
from tui.core.report import DEFAULT_PRICES, build_report, load_records, render_report, summary_for

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]

SYSTEM = "You are a careful coding agent. Follow the repository rules and keep answers short. " * 12
TOOLS = [
    {
        "name": "Read",
        "description": "Read a file from disk and return its contents with line numbers. " * 4,
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
    {
        "name": "mcp__filesystem__list_directory",
        "description": "List the entries of a directory on the local disk. " * 3,
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
    },
]


@dataclass
class Expected:
    """Token totals of one session, computed here from the HTTP responses' usage."""

    prompts: list[float] = field(default_factory=list)
    cached: int = 0
    output: int = 0

    def add(self, prompt: int, cached: int, output: int) -> None:
        self.prompts.append(prompt)
        self.cached += cached
        self.output += output

    @property
    def prompt(self) -> int:
        return round(sum(self.prompts))


def nearest_rank(values: list[float], q: float) -> float:
    """Nearest-rank percentile, written out independently of the report code."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def anthropic_usage(resp: dict[str, Any]) -> tuple[int, int, int]:
    usage = resp["usage"]
    cached = usage.get("cache_read_input_tokens", 0)
    prompt = usage["input_tokens"] + cached + usage.get("cache_creation_input_tokens", 0)
    return prompt, cached, usage["output_tokens"]


def anthropic_stream_usage(raw: str) -> tuple[int, int, int]:
    start: dict[str, Any] = {}
    output = 0
    for event in raw.split("\n\n"):
        for line in event.splitlines():
            if not line.startswith("data: "):
                continue
            data = json.loads(line[6:])
            if data["type"] == "message_start":
                start = data["message"]["usage"]
            elif data["type"] == "message_delta":
                output = data["usage"]["output_tokens"]
    cached = start.get("cache_read_input_tokens", 0)
    return start["input_tokens"] + cached + start.get("cache_creation_input_tokens", 0), cached, output


def openai_usage(usage: dict[str, Any]) -> tuple[int, int, int]:
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    return usage["prompt_tokens"], cached, usage["completion_tokens"]


def openai_stream_usage(raw: str) -> tuple[int, int, int]:
    chunks = [json.loads(e[6:]) for e in raw.split("\n\n") if e.startswith("data: {")]
    return openai_usage([c for c in chunks if c.get("usage")][-1]["usage"])


def anthropic_turns(n: int) -> list[dict[str, Any]]:
    """A growing conversation: each turn repeats the previous ones (prefix-cache reuse)."""
    messages: list[dict[str, Any]] = []
    bodies = []
    for i in range(n):
        messages = [*messages, {"role": "user", "content": f"step {i}: list the files in src/{i} please"}]
        bodies.append({
            "model": "claude-sonnet-4-5", "max_tokens": 12, "temperature": 0, "stream": i == 1,
            "system": [{"type": "text", "text": SYSTEM}], "tools": TOOLS, "messages": messages,
        })
        messages = [*messages, {"role": "assistant", "content": f"done with step {i}"}]
    return bodies


async def drive_traffic(url: str) -> dict[str, Expected]:
    """Two sessions in two dialects plus non-model requests; returns usage totals per session."""
    expected = {"sess-a": Expected(), "sess-b": Expected()}
    async with aiohttp.ClientSession() as http:
        head_a = {"x-claude-code-session-id": "sess-a"}
        for body in anthropic_turns(3):
            async with http.post(url + "/v1/messages", json=body, headers=head_a) as r:
                assert r.status == 200, await r.text()
                if body["stream"]:
                    expected["sess-a"].add(*anthropic_stream_usage(await r.text()))
                else:
                    expected["sess-a"].add(*anthropic_usage(await r.json()))
        head_b = {"x-session-id": "sess-b"}
        chat: dict[str, Any] = {
            "model": "gpt-5-mini", "max_tokens": 12, "temperature": 0,
            "messages": [{"role": "system", "content": SYSTEM * 2}, {"role": "user", "content": "hello"}],
        }
        async with http.post(url + "/v1/chat/completions", json=chat, headers=head_b) as r:
            assert r.status == 200
            expected["sess-b"].add(*openai_usage((await r.json())["usage"]))
        chat |= {"stream": True, "stream_options": {"include_usage": True}}
        async with http.post(url + "/v1/chat/completions", json=chat, headers=head_b) as r:
            assert r.status == 200
            expected["sess-b"].add(*openai_stream_usage(await r.text()))
        # Not model traffic: must be counted apart, never in the token totals.
        async with http.post(url + "/v1/messages/count_tokens", json=anthropic_turns(1)[0]) as r:
            assert r.status == 200
        async with http.get(url + "/v1/models") as r:
            assert r.status == 200
    return expected


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory, llama_server_bin: Path, tiny_model: Path) -> Any:
    """A journal written by the real proxy in front of a dedicated server, and the expected numbers."""
    workdir = tmp_path_factory.mktemp("report")
    server = start_llama_server(llama_server_bin, tiny_model, workdir / "server")
    journal = workdir / "journal.sqlite3"
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=server.url),
        journal=JournalSettings(path=str(journal)),
        anatomy=AnatomySettings(mcp_servers=["filesystem"]),
    )

    async def run() -> dict[str, Expected]:
        service = ProxyService(settings)
        await service.start()
        try:
            result = await drive_traffic(service.url)
            assert await asyncio.to_thread(service.flush, 60.0)
            return result
        finally:
            await service.stop()

    try:
        expected = asyncio.run(run())
    finally:
        server.stop()
    return journal, expected


def check_summary(summary: Any, exp: Expected) -> None:
    assert summary.requests == len(exp.prompts)
    assert summary.prompt_tokens == exp.prompt
    assert summary.cached_tokens == exp.cached
    assert summary.output_tokens == exp.output
    assert summary.reuse_rate == pytest.approx(exp.cached / exp.prompt)
    assert summary.effective_per_request == pytest.approx((exp.prompt - exp.cached) / len(exp.prompts))
    for q, got in ((50, summary.prompt_p50), (95, summary.prompt_p95), (99, summary.prompt_p99)):
        assert got == nearest_rank(exp.prompts, q)


def test_report_numbers_match_the_http_usage(traffic: Any) -> None:
    journal, expected = traffic
    records = load_records(journal)
    assert len(records) == 7
    report = build_report(records)
    by_session = {s.session: s for s in report.sessions}
    assert set(by_session) == {"sess-a", "sess-b"}
    for name, exp in expected.items():
        check_summary(by_session[name], exp)
        check_summary(summary_for(records, session=name), exp)
    assert expected["sess-a"].cached > 0, "the growing conversation should reuse the server's prefix cache"

    overall = report.overall
    everything = Expected(
        prompts=expected["sess-a"].prompts + expected["sess-b"].prompts,
        cached=expected["sess-a"].cached + expected["sess-b"].cached,
        output=expected["sess-a"].output + expected["sess-b"].output,
    )
    check_summary(overall, everything)
    assert overall.other_requests == 2 and overall.errors == 0

    # Anatomy: MCP schema tokens per server, and categories that add up to the server's prompt length.
    rows = JournalReader(journal).latest(100)
    mcp_in_rows = sum(r.anatomy.mcp_servers["filesystem"]["tokens"] for r in rows
                      if r.anatomy and r.kind != "count_tokens" and "filesystem" in r.anatomy.mcp_servers)
    assert overall.mcp_servers == {"filesystem": mcp_in_rows} and mcp_in_rows > 0
    assert by_session["sess-a"].categories["mcp_tools"] == mcp_in_rows
    assert by_session["sess-b"].categories["tools"] == 0
    assert sum(overall.categories.values()) >= everything.prompt

    # Every prompt is under 8k tokens: one latency bucket, built from the journaled timings.
    small = overall.latency[0]
    assert small.label == "<8k" and small.requests == 5
    assert all(b.requests == 0 for b in overall.latency[1:])
    ttfbs = [r.ttfb_ms for r in records if r.kind != "count_tokens" and r.method == "POST"]
    assert small.ttfb_p50 == nearest_rank([t for t in ttfbs if t is not None], 50)
    assert small.total_p50 is not None and small.total_p95 is not None and small.total_p50 <= small.total_p95

    # The default stabilizer ran on every model request (nothing to change here: 0 saved, but recorded);
    # no MCP server was switched off and energy is not journaled: "not recorded".
    data = overall.to_json()
    assert data["saved_by_transforms"] == {"tokens": 0, "recorded_requests": 5}
    assert data["saved_by_mcp_switches"]["note"] == "not recorded"
    assert data["energy"]["note"] == "not recorded"

    # Cloud cost of the same traffic, recomputed from the price table.
    new = everything.prompt - everything.cached
    for price, cost in zip(DEFAULT_PRICES, overall.costs, strict=True):
        want = (new * price.input + everything.cached * price.cached_input + everything.output * price.output)
        assert cost.total == pytest.approx(want / 1e6)

    days = {time.strftime("%Y-%m-%d", time.localtime(r.ts)) for r in records}
    assert [d.day for d in report.days] == sorted(days)
    assert sum(d.requests for d in report.days) == 5


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ctxbudget")
    sub = parser.add_subparsers(dest="command")
    report_cmd.register(sub, parser)
    args = parser.parse_args(argv)
    return int(args.func(args, Settings()))


def test_report_command_writes_every_format(traffic: Any, tmp_path: Path) -> None:
    journal, expected = traffic
    outputs = {}
    for fmt in ("table", "md", "json", "csv"):
        out = tmp_path / f"report.{fmt}"
        assert run_cli(["report", "--journal", str(journal), "--format", fmt, "--since", "1d",
                        "--out", str(out)]) == 0
        outputs[fmt] = out.read_text(encoding="utf-8")

    data = json.loads(outputs["json"])
    sessions = {s["session"]: s for s in data["sessions"]}
    for name, exp in expected.items():
        assert sessions[name]["prompt_tokens"] == exp.prompt
        assert sessions[name]["cached_tokens"] == exp.cached
        assert sessions[name]["output_tokens"] == exp.output
    assert data["prices"]["date"] == "2026-11"

    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert {r["session"] for r in rows} == {"sess-a", "sess-b"}
    assert sum(int(r["prompt_tokens"]) for r in rows) == sum(e.prompt for e in expected.values())
    assert all(r["transform_saved_tokens"] == "0" and r["energy_j"] == "" for r in rows)
    assert all(r["mcp_saved_tokens"] == "" for r in rows)

    md = outputs["md"]
    assert "## Per session" in md and any(line.startswith("| sess-a | 3 |") for line in md.splitlines())
    assert "█" in md and "2026-11 list prices, check before relying on them" in md
    assert "not recorded" in outputs["table"] and "sess-b" in outputs["table"]
    # The models the agents asked for (claude-sonnet-4-5, gpt-5-mini) mark their price rows, once each.
    lines = outputs["table"].splitlines()
    marked = [line.split("*")[0].strip() for line in lines if " * " in line and "USD" in line]
    assert marked == ["Claude Sonnet 4.5", "GPT-5 mini"]


def test_report_command_filters_by_session_and_date(
    traffic: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    journal, expected = traffic
    assert run_cli(["report", "--journal", str(journal), "--format", "json", "--session", "sess-b"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [s["session"] for s in data["sessions"]] == ["sess-b"]
    assert data["overall"]["prompt_tokens"] == expected["sess-b"].prompt

    assert run_cli(["report", "--journal", str(journal), "--format", "json", "--since", "2999-01-01"]) == 0
    assert json.loads(capsys.readouterr().out)["overall"]["requests"] == 0

    assert run_cli(["report", "--journal", str(journal), "--since", "yesterday"]) == 2
    assert "expected a duration" in capsys.readouterr().err
    assert run_cli(["report", "--journal", str(journal.parent / "missing.sqlite3")]) == 1


def test_render_matches_build_for_the_same_rows(traffic: Any) -> None:
    journal, _ = traffic
    report = build_report(load_records(journal))
    assert json.loads(render_report(report, "json"))["overall"]["requests"] == report.overall.requests
