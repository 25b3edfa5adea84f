"""Each CLI command with `--connect` against a running `ctxbudget serve --proxy` (console script)."""

from __future__ import annotations

import json
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


def ctxbudget(*args: str, token: str | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The console script with an empty local config (so nothing can come from this machine's settings)."""
    empty = cwd / "laptop.toml"
    empty.write_text("# the laptop: defaults only\n")
    env = {k: v for k, v in os.environ.items() if k != "CTXBUDGET_TOKEN"}
    env["CTXBUDGET_CONFIG"] = str(empty)
    if token is not None:
        env["CTXBUDGET_TOKEN"] = token
    return subprocess.run(
        [*ctxbudget_cmd(), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def test_cli_commands_with_connect(llama_server: StartServer, tmp_path: Path) -> None:
    server = llama_server()
    config = serve_config(tmp_path, server, free_port())
    journal = tmp_path / "journal.sqlite3"
    serve = start_serve(config, tmp_path, "--proxy")
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    try:
        token = token_path().read_text().strip()
        proxy_url = eventually_sync(
            lambda: httpx.get(serve.url + "/_ctxbudget/info", trust_env=False).json()["proxy_url"],
            what="the proxy child listening",
        )
        for text in ("first question", "second question"):
            body = {
                "model": "m",
                "max_tokens": 8,
                "messages": [{"role": "user", "content": text}],
                "tools": [{"name": "mcp__filesystem__read", "description": "read", "input_schema": {}}],
            }
            answer = httpx.post(proxy_url + "/v1/messages", json=body, timeout=60, trust_env=False)
            assert answer.status_code == 200
        eventually_sync(lambda: JournalReader(journal).count() == 2, what="two journal rows")
        ids = [r.id for r in JournalReader(journal).since(0)]
        url = serve.url

        out = ctxbudget("requests", "--connect", url, "--json", token=token, cwd=laptop)
        assert out.returncode == 0, out.stderr
        assert [json.loads(line)["id"] for line in out.stdout.splitlines()] == ids
        table = ctxbudget("requests", "--connect", url, token=token, cwd=laptop)
        assert table.returncode == 0 and len(table.stdout.splitlines()) == 3

        remote_report = ctxbudget("report", "--connect", url, "--format", "json", token=token, cwd=laptop)
        local_report = ctxbudget(
            "report", "--journal", str(journal), "--format", "json", token=None, cwd=laptop
        )
        assert remote_report.returncode == 0, remote_report.stderr
        remote_json, local_json = json.loads(remote_report.stdout), json.loads(local_report.stdout)
        remote_json.pop("generated_ts"), local_json.pop("generated_ts")
        assert remote_json == local_json
        assert json.loads(remote_report.stdout)["overall"]["requests"] == 2

        doctor = ctxbudget("doctor", "--connect", url, "--json", token=token, cwd=laptop)
        checks = {c["check"]: c for c in json.loads(doctor.stdout)}
        assert checks["server"]["status"] == "pass" and str(server.port) in checks["server"]["message"]

        status = ctxbudget("server", "status", "--connect", url, token=token, cwd=laptop)
        assert status.returncode == 0 and f"up at {server.url}" in status.stdout, status.stderr
        status_json = json.loads(
            ctxbudget("server", "status", "--connect", url, "--json", token=token, cwd=laptop).stdout
        )
        assert status_json["phase"] == "up" and status_json["url"] == server.url

        mcp = ctxbudget("mcp", "list", "--connect", url, "--json", token=token, cwd=laptop)
        assert mcp.returncode == 0, mcp.stderr
        assert url in json.loads(mcp.stdout)["source"]
        off = ctxbudget("mcp", "off", "filesystem", "--connect", url, token=token, cwd=laptop)
        assert off.returncode == 0 and "filesystem: off in the running proxy" in off.stdout, off.stderr
        state = httpx.get(proxy_url + "/_ctxbudget/state", trust_env=False).json()
        assert [s["server"] for s in state["mcp"]["servers"] if not s["enabled"]] == ["filesystem"]

        transforms = ctxbudget(
            "transforms", "on", "stabilize", "--connect", url, "--json", token=token, cwd=laptop
        )
        assert transforms.returncode == 0, transforms.stderr
        assert "stabilize" in json.loads(transforms.stdout)["enabled_now"]
        listed = json.loads(
            ctxbudget("transforms", "list", "--connect", url, "--json", token=token, cwd=laptop).stdout
        )
        assert {t["name"]: t["enabled"] for t in listed["transforms"]}["stabilize"] is True

        env = ctxbudget("env", "--connect", url, token=token, cwd=laptop)
        assert env.returncode == 0, env.stderr
        assert f"export ANTHROPIC_BASE_URL={proxy_url}" in env.stdout
        assert 'export ANTHROPIC_API_KEY="$CTXBUDGET_TOKEN"' in env.stdout
        assert token not in env.stdout + env.stderr
        opencode = ctxbudget("env", "--connect", url, "--client", "opencode", token=token, cwd=laptop)
        config_json = json.loads(opencode.stdout)
        assert config_json["provider"]["ctxbudget"]["options"]["apiKey"] == "{env:CTXBUDGET_TOKEN}"
        assert token not in opencode.stdout + opencode.stderr

        wrong = ctxbudget("requests", "--connect", url, token="not-the-token", cwd=laptop)
        assert (
            wrong.returncode == 1 and "token refused" in wrong.stderr and "not-the-token" not in wrong.stderr
        )
    finally:
        assert serve.stop() == 0, serve.output()[-2000:]
