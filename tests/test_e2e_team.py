"""Team server end to end: two real Claude Code users with their own keys through one real proxy."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from support.agents import filesystem_mcp, make_claude_project, run_claude_print
from support.llama import StartServer
from support.proxy_process import ProxyProcess, start_proxy
from support.relay import Seen, relay_to

from tui.core.journal.reader import JournalReader
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.slow]

JOURNAL_TIMEOUT_S = 60.0


def team_add(name: str) -> str:
    """`ctxbudget team add NAME` as a user runs it; the key it printed once."""
    run = subprocess.run(
        [sys.executable, "-m", "tui", "team", "add", name], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert "shown only this once" in run.stderr
    return run.stdout.strip()


def journal_rows(proxy: ProxyProcess, count: int) -> list[RequestRecord]:
    """The journal's rows once `count` are there and analysed."""
    reader = JournalReader(proxy.journal_path)
    deadline = time.monotonic() + JOURNAL_TIMEOUT_S
    try:
        while True:
            rows = reader.latest(500)
            if len(rows) >= count and all(r.anatomy is not None or r.unparsed_reason for r in rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(rows)} of {count} rows journaled:\n{proxy.output()[-3000:]}")
            time.sleep(0.2)
    finally:
        reader.close()


def tool_names(seen: Seen) -> list[str]:
    return [str(t.get("name")) for t in orjson.loads(seen.body).get("tools") or []]


def test_two_claude_code_users_share_one_proxy(
    llama_server: StartServer, claude_code: Path, mcp_filesystem: Path, tmp_path: Path
) -> None:
    keys = {"alice": team_add("alice"), "bob": team_add("bob")}
    user_of = {key: name for name, key in keys.items()}
    upstream_key = "llama-" + secrets.token_hex(12)
    # The server itself wants a key: a user key reaching it would be refused there too.
    server = llama_server(ctx_size=131072, parallel=2, api_key=upstream_key)
    config = (
        f'[team]\nrequire_user = true\n[server]\napi_key = "{upstream_key}"\n'
        "[transforms]\nenabled = []\n"  # no transform: whatever changes a body is the MCP switch
    )
    with relay_to(server.url) as upstream:
        proxy = start_proxy(upstream.url, tmp_path / "proxy", config_text=config)
        try:
            cli_config = tmp_path / "cli.toml"
            cli_config.write_text(f'[proxy]\nlisten = "127.0.0.1:{proxy.port}"\n')
            switched = subprocess.run(
                [sys.executable, "-m", "tui", "mcp", "off", "filesystem", "--user", "alice"],
                capture_output=True, text=True, timeout=60,
                env={**os.environ, "CTXBUDGET_CONFIG": str(cli_config)},
            )  # fmt: skip
            assert switched.returncode == 0, switched.stderr
            assert "for user alice in the running proxy" in switched.stdout

            with relay_to(proxy.url) as agents_side:

                def run(name: str) -> subprocess.CompletedProcess[str]:
                    base = tmp_path / name
                    project = make_claude_project(base, [filesystem_mcp(mcp_filesystem, base / "project")])
                    return run_claude_print(
                        claude_code, project, agents_side.url, "list files", api_key=keys[name]
                    )

                with ThreadPoolExecutor(2) as pool:
                    runs = dict(zip(keys, pool.map(run, keys), strict=True))
            for name, done in runs.items():
                assert done.returncode == 0, (name, done.stdout[-2000:], done.stderr[-2000:])

            stranger = "sk-ant-" + secrets.token_hex(8)
            refused = httpx.post(
                proxy.url + "/v1/messages",
                headers={"x-api-key": stranger, "anthropic-version": "2023-06-01"},
                json={"model": "tiny", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            sent = list(agents_side.seen)
            rows = journal_rows(proxy, len(sent) + 1)
            health = proxy.health()
        finally:
            assert proxy.stop() == 0, proxy.output()[-3000:]

    # Every request with a user's key is journaled under that user. Claude Code also sends a keyless
    # `HEAD /` connectivity check: with require_user it is refused like any request without a known key.
    keyed = [s for s in sent if s.header("x-api-key")]
    keyless = [s for s in sent if not s.header("x-api-key")]
    assert all((s.method, s.path) == ("HEAD", "/") for s in keyless)
    sent_by = Counter((user_of[s.header("x-api-key") or ""], s.path) for s in keyed)
    assert {u for u, _ in sent_by} == {"alice", "bob"}
    journaled = Counter((r.user, r.path) for r in rows if r.status != 401)
    assert journaled == sent_by

    # The unknown key: 401 in the Anthropic dialect, never forwarded, counted and journaled.
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication_error"
    assert health["unauthorized"] == len(keyless) + 1
    rejected = [r for r in rows if r.status == 401]
    assert len(rejected) == len(keyless) + 1
    assert all(r.user == "unknown" and r.error and "unknown or missing key" in r.error for r in rejected)
    # The upstream also gets the analysis worker's token counts (/tokenize, /apply-template).
    agent_paths = {s.path for s in keyed}
    forwarded = [s for s in upstream.seen if s.path in agent_paths]
    assert len(forwarded) == len(keyed)

    # The upstream never sees a user key: forwarded requests carry the server's own.
    for seen in upstream.seen:
        blob = repr(seen.headers).encode() + seen.body
        assert not any(key.encode() in blob for key in [*keys.values(), stranger])
    for seen in forwarded:
        assert seen.header("x-api-key") is None
        assert seen.header("Authorization") == f"Bearer {upstream_key}"

    # Bob's requests reach the upstream byte for byte as his agent sent them (filesystem tools included);
    # Alice's lose the filesystem tools she switched off, and nothing else changes in them.
    upstream_bodies = [s.body for s in forwarded]
    bob_bodies = [s.body for s in keyed if user_of[s.header("x-api-key") or ""] == "bob"]
    assert all(body in upstream_bodies for body in bob_bodies)
    assert any(b'"mcp__filesystem__' in body for body in bob_bodies)
    alice_main = [
        s for s in keyed
        if user_of[s.header("x-api-key") or ""] == "alice" and any(
            n.startswith("mcp__filesystem__") for n in tool_names(s)
        )
    ]  # fmt: skip
    assert alice_main, "Alice's agent offered no filesystem tools"
    alice_forwarded = [s for s in forwarded if s.body not in bob_bodies]
    for s in alice_main:
        assert s.body not in upstream_bodies
        sent_body = orjson.loads(s.body)
        expected = [t for t in sent_body["tools"] if not str(t["name"]).startswith("mcp__filesystem__")]
        assert any(orjson.loads(f.body) == {**sent_body, "tools": expected} for f in alice_forwarded)
    alice_rows = [r for r in rows if r.user == "alice" and r.anatomy and r.anatomy.tools]
    assert alice_rows and all((r.mcp_saved_tokens or 0) > 0 for r in alice_rows)
    assert all(r.mcp_saved_tokens is None for r in rows if r.user == "bob")
