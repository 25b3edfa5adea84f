"""Per-user switches and compaction, the control API's user parameter, metrics and `report --by user`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from builders import cc_request
from support.llama import RunningServer

from tui.core.actions.compaction import CompactionStore
from tui.core.actions.compaction_summary import finish_compaction, plan_compaction
from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, Settings, TeamSettings
from tui.core.control.controls import ProxyControls
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.journal.writer import Journal
from tui.core.prom.metrics import ProxyMetrics
from tui.core.proxy.rewrite import RequestRewriter
from tui.core.proxy.service import ProxyService
from tui.core.records import RequestRecord, Usage
from tui.core.team.gate import KeyGate
from tui.core.team.keys import hash_key

TEAM = TeamSettings(users={"alice": hash_key("key-a"), "bob": hash_key("key-b")})


def team_rewriter(tmp_path: Path) -> RequestRewriter:
    settings = Settings(team=TEAM, anatomy=AnatomySettings(mcp_servers=["filesystem"]))
    controls = ProxyControls.build(
        settings,
        mcp_store=McpSwitchStore(tmp_path / "mcp_switches.json"),
        transform_switches=TransformSwitchStore([], tmp_path / "t.json"),
        compaction_store=CompactionStore(tmp_path / "compactions.json"),
        gate=KeyGate(TEAM, need_key=False),
    )
    return RequestRewriter(controls)


def long_conversation() -> dict[str, object]:
    body = cc_request(billing="You are Claude Code.")
    messages = body["messages"]
    for n in range(4):
        messages += [
            {"role": "assistant", "content": [{"type": "text", "text": f"answer {n}"}]},
            {"role": "user", "content": [{"type": "text", "text": f"turn {n}: and now?"}]},
        ]
    return body


def test_one_users_mcp_switch_and_compaction_leave_another_users_bytes_alone(tmp_path: Path) -> None:
    rewriter = team_rewriter(tmp_path)
    controls = rewriter.controls
    body = long_conversation()
    body["tools"] = [
        *body.get("tools", []),  # type: ignore[list-item]
        {"name": "mcp__filesystem__read_file", "description": "read", "input_schema": {"type": "object"}},
    ]
    raw = orjson.dumps(body)
    controls.mcp_store_for("alice").set_enabled("filesystem", False)
    plan = plan_compaction(orjson.loads(raw), "anthropic", "s1", keep_turns=1)
    compaction = controls.compaction_for("alice")
    assert compaction is not None
    compaction.store.add(finish_compaction(plan, "Earlier: small talk."))

    # The same bytes from Bob (and from the single user) go out as they came: the very same object.
    for user in ("bob", "", "unknown"):
        out, note = rewriter.process("POST", "/v1/messages", {}, raw, user)
        assert out is raw and (note is None or not note.rewritten), user
    out, note = rewriter.process("POST", "/v1/messages", {}, raw, "alice")
    assert note is not None and note.mcp_removed and note.compaction_saved is not None
    sent = orjson.loads(out)
    assert "mcp__filesystem__read_file" not in [t["name"] for t in sent["tools"]]
    assert len(sent["messages"]) < len(body["messages"])  # type: ignore[arg-type]

    # Alice's state lives in her own files beside the single user's, which stay untouched.
    assert (tmp_path / "users" / "alice" / "mcp_switches.json").is_file()
    assert (tmp_path / "users" / "alice" / "compactions.json").is_file()
    assert controls.mcp_off("") == frozenset() and not (tmp_path / "compactions.json").exists()
    with pytest.raises(ValueError):
        controls.mcp_store_for("../x")


async def test_control_api_takes_a_user(shared_llama_server: RunningServer, tmp_path: Path) -> None:
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=shared_llama_server.url),
        journal=JournalSettings(path=str(tmp_path / "journal.sqlite3")),
        team=TEAM,
    )
    service = ProxyService(
        settings,
        analysis="thread",
        mcp_store=McpSwitchStore(tmp_path / "mcp_switches.json"),
        compaction_store=CompactionStore(tmp_path / "compactions.json"),
    )
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=service.url + "/_ctxbudget/", timeout=30) as client:
            off = await client.post("mcp", json={"server": "filesystem", "enabled": False, "user": "alice"})
            assert off.status_code == 200
            assert off.json()["user"] == "alice" and off.json()["off"] == ["filesystem"]
            stranger = await client.post("mcp", json={"server": "x", "enabled": False, "user": "mallory"})
            assert stranger.status_code == 404 and "unknown user 'mallory'" in stranger.json()["error"]
            alice = (await client.get("state", params={"user": "alice"})).json()
            single = (await client.get("state")).json()
            assert alice["mcp"]["user"] == "alice"
            assert [s["server"] for s in alice["mcp"]["servers"] if not s["enabled"]] == ["filesystem"]
            assert all(s["enabled"] for s in single["mcp"]["servers"])
            assert alice["users"] == ["", "alice", "bob", "unknown"]
            undo = await client.post("compact/undo", json={"session": None, "user": "bob"})
            assert undo.status_code == 404
    finally:
        await service.stop()
    assert service.mcp_store.off() == frozenset()


def test_user_metrics_are_bounded_by_the_configured_users() -> None:
    metrics = ProxyMetrics(team_users=lambda: ("alice", "bob"))
    usage = Usage(prompt_tokens=100, cached_tokens=40, output_tokens=7)
    for user in ("alice", "unknown", "mallory", ""):
        metrics.observe(
            RequestRecord(1, 0.0, "POST", "/v1/messages", 200, kind="main", user=user, usage=usage)
        )
    text = metrics.exposition().decode()
    assert 'ctxbudget_user_requests_total{kind="main",user="alice"} 1.0' in text
    assert 'ctxbudget_user_requests_total{kind="main",user="unknown"} 1.0' in text
    assert 'ctxbudget_user_requests_total{kind="main",user="other"} 1.0' in text  # never "mallory"
    assert "mallory" not in text and 'user=""' not in text
    assert 'ctxbudget_user_prompt_tokens_total{user="alice"} 100.0' in text


def test_report_by_user_through_the_console_script(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = Journal(path)
    rows = [("alice", "s1", 1000), ("alice", "s2", 500), ("bob", "s3", 300)]
    for i, (user, session, prompt) in enumerate(rows):
        journal.append_record(
            RequestRecord(
                0, 1_796_000_000.0 + i, "POST", "/v1/messages", 200, session_id=session, kind="main",
                dialect="anthropic", user=user, usage=Usage(prompt_tokens=prompt, cached_tokens=0),
            )
        )  # fmt: skip
    journal.close()

    def report(*extra: str) -> str:
        run = subprocess.run(
            [sys.executable, "-m", "tui", "report", "--journal", str(path), *extra],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        return run.stdout

    table = report("--by", "user")
    lines = table[table.index("Per user") :].splitlines()
    alice = next(line.split() for line in lines if line.strip().startswith("alice"))
    bob = next(line.split() for line in lines if line.strip().startswith("bob"))
    assert alice[1:3] == ["2", "1,500"] and alice[8] == "2"  # requests, prompt, sessions
    assert bob[1:3] == ["1", "300"] and bob[8] == "1"
    users = orjson.loads(report("--format", "json"))["users"]
    assert [(u["user"], u["requests"], u["prompt_tokens"]) for u in users] == [
        ("alice", 2, 1500),
        ("bob", 1, 300),
    ]
    listed = subprocess.run(
        [sys.executable, "-m", "tui", "requests", "--journal", str(path)], capture_output=True, text=True
    ).stdout.splitlines()
    assert [line.rsplit("user ", 1)[-1] for line in listed[1:]] == ["alice", "alice", "bob"]
    csv_lines = report("--by", "user", "--format", "csv").splitlines()
    assert csv_lines[0].startswith("user,day,requests") and csv_lines[1].startswith("alice,,2,")
