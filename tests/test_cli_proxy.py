"""The proxy, requests and env commands run as real processes against a real llama-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.llama import RunningServer, free_port

from tui.core.journal.writer import JournalReader

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parent.parent
MINE = ("tui.commands.proxy_cmd", "tui.commands.requests_cmd", "tui.commands.env_cmd")
# Runs the real tui.cli.main; while other command modules are still missing, only with this area's commands.
LAUNCH = (
    "import importlib.util, sys, tui.cli as cli\n"
    "if not all(importlib.util.find_spec(m) for m in cli.COMMAND_MODULES):\n"
    f"    cli.COMMAND_MODULES = {MINE!r}\n"
    "raise SystemExit(cli.main(sys.argv[1:]))\n"
)


def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment with a scratch HOME/XDG so no user config or journal is touched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTXBUDGET")}
    env.update(
        HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "cfg")
    )
    return env


def run_cli(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `ctxbudget ARGS` to completion."""
    return subprocess.run(
        [sys.executable, "-c", LAUNCH, *args], capture_output=True, text=True, timeout=timeout,
        cwd=tmp_path, env=cli_env(tmp_path),
    )


def start_proxy_process(tmp_path: Path, upstream: str, journal: Path) -> tuple[subprocess.Popen[str], str]:
    """`ctxbudget proxy` in the background; returns it once it is listening."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", LAUNCH, "proxy", "--listen", f"127.0.0.1:{port}", "--upstream", upstream,
         "--journal", str(journal), "--mcp-server", "filesystem"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=cli_env(tmp_path),
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    diagnostics = banner + (proc.stderr.read() if proc.stderr and not banner else "")
    assert f"listening on http://127.0.0.1:{port}" in banner, diagnostics
    return proc, f"http://127.0.0.1:{port}"


def chat(url: str, content: str = "hi", **headers: str) -> httpx.Response:
    """One small non-streamed chat completion."""
    messages = [{"role": "system", "content": "be brief " * 30}, {"role": "user", "content": content}]
    body = {"model": "m", "max_tokens": 4, "temperature": 0, "messages": messages}
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=60)


def test_proxy_command_prints_lines_and_requests_lists_them(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    journal = tmp_path / "j.sqlite3"
    proc, url = start_proxy_process(tmp_path, shared_llama_server.url, journal)
    try:
        assert chat(url).status_code == 200
        assert httpx.get(url + "/v1/models", timeout=10).status_code == 200
        assert proc.stdout is not None
        first = proc.stdout.readline()
        second = proc.stdout.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    assert "POST /v1/chat/completions" in first and "prompt " in first and "ttfb " in first
    assert first.rstrip().endswith("200") and "system" in first
    assert "GET /v1/models" in second

    listed = run_cli(tmp_path, "requests", "--journal", str(journal), "--json")
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["path"] for r in lines] == ["/v1/chat/completions", "/v1/models"]
    expected = JournalReader(journal).latest(2)
    assert [{k: v for k, v in line.items() if k != "forecast"} for line in lines] == [
        r.to_json() for r in expected
    ]
    assert all(set(line["forecast"]) >= {"turns_to_full", "per_turn", "n_ctx"} for line in lines)
    assert lines[0]["anatomy"]["categories"]["system"] > 0 and lines[0]["dialect"] == "openai"

    table = run_cli(tmp_path, "requests", "--journal", str(journal), "--last", "1")
    assert table.returncode == 0 and "GET /v1/models" in table.stdout and "chat" not in table.stdout
    missing = run_cli(tmp_path, "requests", "--journal", str(tmp_path / "nope.sqlite3"))
    assert missing.returncode == 1 and "no journal" in missing.stderr


def test_rows_survive_kill_9_of_the_proxy(shared_llama_server: RunningServer, tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite3"
    proc, url = start_proxy_process(tmp_path, shared_llama_server.url, journal)
    try:
        for i in range(20):
            assert chat(url, f"question {i}").status_code == 200
        reader = JournalReader(journal)
        deadline = time.monotonic() + 30
        while reader.count() < 20:
            assert time.monotonic() < deadline, "rows did not reach the journal"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait(10)
    rows = JournalReader(journal).since(0)
    assert len(rows) == 20 and all(r.status == 200 and r.anatomy is not None for r in rows)


def test_proxy_refuses_remote_listen_without_flag(tmp_path: Path) -> None:
    refused = run_cli(tmp_path, "proxy", "--listen", "0.0.0.0:0")
    assert refused.returncode == 2 and "--allow-remote" in refused.stderr


def test_env_uses_the_servers_real_context(shared_llama_server: RunningServer, tmp_path: Path) -> None:
    n_ctx = httpx.get(shared_llama_server.url + "/props").json()["default_generation_settings"]["n_ctx"]
    claude = run_cli(tmp_path, "env", "--upstream", shared_llama_server.url, "--listen", "127.0.0.1:3456")
    assert claude.returncode == 0, claude.stderr
    lines = claude.stdout.splitlines()
    exports = dict(line.removeprefix("export ").split("=", 1) for line in lines if line.startswith("export"))
    assert exports["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:3456"
    assert exports["ANTHROPIC_API_KEY"] == "dummy"
    assert exports["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1" and exports["DISABLE_TELEMETRY"] == "1"
    assert exports["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] == str(n_ctx)
    opencode = run_cli(tmp_path, "env", "--client", "opencode", "--upstream", shared_llama_server.url)
    config = json.loads(opencode.stdout)
    provider = config["provider"]["ctxbudget"]
    assert provider["npm"] == "@ai-sdk/openai-compatible"
    assert provider["options"]["baseURL"] == "http://127.0.0.1:3000/v1"
    (model,) = provider["models"].values()
    assert model["limit"]["context"] == n_ctx


def test_env_with_server_down_still_prints_the_snippet(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    out = run_cli(tmp_path, "env", "--upstream", dead)
    assert out.returncode == 0
    assert f"# warning: {dead} is not reachable" in out.stdout
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:3000" in out.stdout
    assert "CLAUDE_CODE_MAX_CONTEXT_TOKENS" not in out.stdout  # no invented window
    opencode = run_cli(tmp_path, "env", "--client", "opencode", "--upstream", dead)
    assert "not reachable" in opencode.stderr
    assert "limit" not in json.loads(opencode.stdout)["provider"]["ctxbudget"]["models"]["local"]


def test_proxy_reports_an_unusable_journal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    out = run_cli(tmp_path, "proxy", "--listen", "127.0.0.1:0", "--journal", str(blocker / "j.sqlite3"))
    assert out.returncode == 1 and "cannot open the journal" in out.stderr and str(blocker) in out.stderr
