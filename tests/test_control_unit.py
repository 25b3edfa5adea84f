"""Pure-logic checks of the control API's loopback guard, the switch store, the rewrite hook and the
journal migration (the real-server behaviour is in test_control_api.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from support.rewriters import make_rewriter
from test_journal import make_exchange, make_result

from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.analysis.capture import RewriteNote
from tui.core.analysis.savings import savings_for
from tui.core.control.api import is_loopback, loopback_only
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.journal.schema import ADDED_COLUMNS, SCHEMA
from tui.core.journal.writer import Journal, JournalReader
from tui.core.proxy.rewrite import RequestRewriter
from tui.core.records import RewriteSavings, TransformSaving
from tui.core.tokens import TiktokenCounter
from tui.core.transforms.settings import TransformSettings


@pytest.mark.parametrize(
    ("remote", "ok"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", False),  # mapped addresses are not treated as loopback by ipaddress
        ("10.0.0.7", False),
        ("192.168.1.20", False),
        ("fe80::1%eth0", False),
        ("", False),
        (None, False),
        ("not-an-ip", False),
    ],
)
def test_is_loopback(remote: str | None, ok: bool) -> None:
    assert is_loopback(remote) is ok


def mocked(path: str, peer: str, method: str = "GET", headers: dict[str, str] | None = None) -> web.Request:
    transport = MagicMock()
    transport.get_extra_info.side_effect = lambda name, default=None: (
        (peer, 5555) if name == "peername" else default
    )
    return make_mocked_request(method, path, headers=headers, transport=transport)


async def test_control_paths_refuse_remote_peers_but_traffic_passes() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(text="handled")

    refused = await loopback_only(mocked("/_ctxbudget/state", "10.0.0.7"), handler)
    assert refused.status == 403
    allowed = await loopback_only(mocked("/_ctxbudget/state", "127.0.0.1"), handler)
    assert allowed.status == 200
    scraped = await loopback_only(mocked("/_ctxbudget/metrics", "10.0.0.7"), handler)
    assert scraped.status == 200  # a team's Prometheus scrapes a proxy started with --allow-remote
    assert (await loopback_only(mocked("/_ctxbudget/metrics", "10.0.0.7", "POST"), handler)).status == 403
    forwarded = await loopback_only(mocked("/v1/messages", "10.0.0.7"), handler)
    assert forwarded.status == 200  # model traffic from remote clients is --allow-remote's business
    json_post = {"Content-Type": "application/json"}
    assert (
        await loopback_only(mocked("/_ctxbudget/mcp", "127.0.0.1", "POST", json_post), handler)
    ).status == 200
    # A page in the user's browser: loopback peer, but cross-site.
    page = {**json_post, "Origin": "https://evil.example"}
    assert (await loopback_only(mocked("/_ctxbudget/mcp", "127.0.0.1", "POST", page), handler)).status == 403
    fetch = {"Sec-Fetch-Site": "cross-site"}
    assert (
        await loopback_only(mocked("/_ctxbudget/state", "127.0.0.1", "GET", fetch), handler)
    ).status == 403


def test_transform_switches_override_the_config_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    store = TransformSwitchStore(["stabilize"], path)
    assert store.enabled() == ("stabilize",)
    assert store.set_enabled("slim_results", True) == ("stabilize", "slim_results")
    assert store.set_enabled("stabilize", False) == ("slim_results",)
    assert store.overrides() == {"on": ["slim_results"], "off": ["stabilize"]}
    other = TransformSwitchStore(["stabilize"], path)  # another process (the CLI) sees the same
    assert other.enabled() == ("slim_results",)
    assert store.set_enabled("stabilize", True) == ("stabilize", "slim_results")
    assert other.overrides() == {"on": ["slim_results"], "off": []}
    with pytest.raises(ValueError, match="valid"):
        store.set_enabled("nope", True)


def rewriter(
    tmp_path: Path, enabled: list[str], settings: TransformSettings | None = None
) -> RequestRewriter:
    settings = settings or TransformSettings(enabled=enabled)
    return make_rewriter(
        settings,
        ("filesystem",),
        McpSwitchStore(tmp_path / "mcp.json"),
        TransformSwitchStore(settings.enabled, tmp_path / "t.json"),
    )


BODY: dict[str, Any] = {
    "model": "m",
    "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.197.abc; cch=12345;"}],
    "tools": [
        {"name": "Read", "description": "read", "input_schema": {"type": "object"}},
        {"name": "mcp__filesystem__read_file", "description": "fs " * 50, "input_schema": {"type": "object"}},
    ],
    "messages": [{"role": "user", "content": "hi"}],
}


def test_unchanged_and_unparsable_bodies_are_forwarded_as_the_same_bytes(tmp_path: Path) -> None:
    hook = rewriter(tmp_path, ["stabilize"])
    plain = orjson.dumps({**BODY, "system": "no billing line"})
    out, note = hook.process("POST", "/v1/messages", {}, plain)
    assert out is plain and note is not None and note.changed == () and note.transforms == ("stabilize",)
    broken = b'{"system": "x-anthropic-billing-header: cch=1'
    assert hook.process("POST", "/v1/messages", {}, broken) == (broken, None)
    count = orjson.dumps(BODY)
    assert hook.process("POST", "/v1/messages/count_tokens", {}, count) == (count, None)
    assert hook.process("GET", "/v1/messages", {}, count) == (count, None)


def test_nothing_enabled_means_nothing_parsed(tmp_path: Path) -> None:
    hook = rewriter(tmp_path, [])
    raw = b"not even json"
    assert hook.process("POST", "/v1/chat/completions", {}, raw) == (raw, None)


def test_stabilizer_skips_bodies_without_a_billing_line(tmp_path: Path) -> None:
    hook = rewriter(tmp_path, ["stabilize"])
    raw = b'{"model": "m", "messages": [], "nonsense'  # never parsed: it cannot hold the billing line
    out, note = hook.process("POST", "/v1/chat/completions", {}, raw)
    assert out is raw and note == RewriteNote("openai", ("stabilize",))
    custom = rewriter(tmp_path, [], TransformSettings(enabled=["stabilize"], stabilizer_patterns=["a => b"]))
    out, note = custom.process(
        "POST", "/v1/chat/completions", {}, b'{"messages": [{"role": "system", "content": "a"}]}'
    )
    assert orjson.loads(out)["messages"][0]["content"] == "b" and note is not None and note.changed


def test_a_failing_rewrite_forwards_the_original(tmp_path: Path) -> None:
    hook = rewriter(tmp_path, ["stabilize"])

    class Broken:
        def off(self) -> frozenset[str]:
            raise RuntimeError("state file exploded")

    hook.controls.mcp_store = Broken()  # type: ignore[assignment]
    raw = orjson.dumps(BODY)
    out, note = hook.process("POST", "/v1/messages", {}, raw)
    assert out is raw and note is not None and note.error and "exploded" in note.error
    assert hook.failures == 1


def test_mcp_filter_then_transforms_and_their_accounting(tmp_path: Path) -> None:
    hook = rewriter(tmp_path, ["stabilize"])
    hook.controls.mcp_store.set_enabled("filesystem", False)
    raw = orjson.dumps(BODY)
    out, note = hook.process("POST", "/v1/messages", {}, raw)
    sent = orjson.loads(out)
    assert [t["name"] for t in sent["tools"]] == ["Read"]
    assert "cch=00000" in sent["system"][0]["text"]
    assert note is not None and note.changed == ("stabilize",) and len(note.mcp_removed) == 1
    # The note carries the texts the transforms rewrote (not the body): here the billing line.
    ((name, (edit,)),) = note.edits
    assert name == "stabilize" and edit.before == BODY["system"][0]["text"] and "cch=00000" in edit.after
    savings = savings_for(note, TiktokenCounter(), sent)
    assert savings is not None and savings.mcp_saved_tokens is not None and savings.mcp_saved_tokens > 50
    (stab,) = savings.transforms
    assert stab.name == "stabilize" and stab.tokens_before is not None and stab.tokens_after is not None
    assert savings.transform_saved_tokens == stab.saved
    assert savings_for(RewriteNote("anthropic", ("stabilize",)), None) == RewriteSavings(
        (TransformSaving("stabilize"),), 0, None, None
    )


def test_old_journal_reads_and_gets_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    old_schema = SCHEMA
    for name, kind in ADDED_COLUMNS:
        old_schema = old_schema.replace(f",\n    {name} {kind}", "")
    conn = sqlite3.connect(path)
    conn.executescript(old_schema)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO requests (ts, method, path, status) VALUES (1.0, 'POST', '/v1/messages', 200)")
    conn.commit()
    conn.close()
    reader = JournalReader(path)
    (old,) = reader.latest(5)
    assert old.transforms == () and old.mcp_saved_tokens is None
    journal = Journal(path)
    row_id = journal.append(
        make_exchange(),
        make_result(),
        savings=RewriteSavings((TransformSaving("stabilize", 10, 8),), 2, 40, None),
    )
    journal.close()
    columns = {r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(requests)")}
    assert {name for name, _ in ADDED_COLUMNS} <= columns
    reader.changed()
    new = reader.get(row_id)
    assert new is not None and new.transforms == (TransformSaving("stabilize", 10, 8),)
    assert (new.transform_saved_tokens, new.mcp_saved_tokens, new.compaction_saved_tokens) == (2, 40, None)
    assert new.to_json()["transforms"] == [{"name": "stabilize", "tokens_before": 10, "tokens_after": 8}]


def test_server_snapshots_feed_metrics_and_compaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui.core.config import JournalSettings, Settings
    from tui.core.poll.snapshots import ServerSnapshot
    from tui.core.proxy.service import ProxyService

    monkeypatch.setenv("CTXBUDGET_DATA_DIR", str(tmp_path / "data"))
    service = ProxyService(Settings(journal=JournalSettings(path=str(tmp_path / "j.sqlite3"))))
    service.observe_server(ServerSnapshot(ts=1.0, state="up", url="http://x", n_slots=2, n_ctx_slot=4096))
    assert service.compaction is not None and service.compaction.context_tokens == 4096
    assert b'ctxbudget_server_state{state="up"} 1.0' in service.metrics.exposition()
