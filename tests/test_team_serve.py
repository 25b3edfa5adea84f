"""A team on `ctxbudget serve --proxy` with the proxy beyond loopback (console scripts, real server)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest
from support.eventually import eventually_sync
from support.llama import StartServer, free_port
from support.serve_process import ctxbudget_cmd, serve_config, start_serve

from tui.core.journal.reader import JournalReader
from tui.core.serve.auth import token_path

pytestmark = [pytest.mark.llama, pytest.mark.timeout(300)]

BODY = {
    "model": "m",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "hello"}],
    "tools": [{"name": "mcp__filesystem__read", "description": "read", "input_schema": {}}],
}


def cli(*args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CTXBUDGET_TOKEN"}
    if token is not None:
        env["CTXBUDGET_TOKEN"] = token
    return subprocess.run([*ctxbudget_cmd(), *args], capture_output=True, text=True, env=env, timeout=120)


def test_team_users_on_a_serve_proxy_beyond_loopback(llama_server: StartServer, tmp_path: Path) -> None:
    server = llama_server()
    key = cli("team", "add", "alice").stdout.strip()
    assert key.startswith("ctxb-")
    config = serve_config(tmp_path, server, free_port())
    proxy_port = free_port()
    beyond = ("--proxy-listen", f"0.0.0.0:{proxy_port}", "--allow-remote")
    serve = start_serve(config, tmp_path, "--proxy", *beyond)
    try:
        token = token_path().read_text().strip()

        def info() -> dict[str, object]:
            answer: dict[str, object] = httpx.get(serve.url + "/_ctxbudget/info", trust_env=False).json()
            return answer

        eventually_sync(lambda: info()["proxy_url"], what="the proxy child listening")
        assert info()["team"] is True
        proxy = f"http://127.0.0.1:{proxy_port}"

        def post(headers: dict[str, str]) -> httpx.Response:
            return httpx.post(proxy + "/v1/messages", json=BODY, headers=headers, timeout=60, trust_env=False)

        assert post({}).status_code == 401
        assert post({"x-api-key": "sk-guess"}).status_code == 401
        assert post({"x-api-key": key}).status_code == 200
        assert post({"Authorization": f"Bearer {token}"}).status_code == 200  # the single user's key

        journal = tmp_path / "journal.sqlite3"
        rows = eventually_sync(
            lambda: (r := JournalReader(journal).since(0)) and len(r) == 4 and r, what="four rows"
        )
        assert [r.user for r in rows] == ["unknown", "unknown", "alice", ""]

        off = cli("mcp", "off", "filesystem", "--user", "alice", "--connect", serve.url, token=token)
        assert off.returncode == 0 and "for user alice in the running proxy" in off.stdout, off.stderr
        state = httpx.get(f"{proxy}/_ctxbudget/state", params={"user": "alice"}, trust_env=False).json()
        assert [s["server"] for s in state["mcp"]["servers"] if not s["enabled"]] == ["filesystem"]
        single = httpx.get(f"{proxy}/_ctxbudget/state", trust_env=False).json()
        assert all(s["enabled"] for s in single["mcp"]["servers"])
        stranger = cli("mcp", "off", "filesystem", "--user", "mallory", "--connect", serve.url, token=token)
        assert stranger.returncode == 1 and "unknown user 'mallory'" in stranger.stderr
    finally:
        assert serve.stop() == 0, serve.output()[-3000:]
