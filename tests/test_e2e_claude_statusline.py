"""Real Claude Code, interactive in tmux, with `ctxbudget statusline` as its statusLine command."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.agents import claude_env, filesystem_mcp, make_claude_project
from support.llama import StartServer
from support.proxy_process import start_proxy

from tui.commands import findings_cmd
from tui.core.config import ProxySettings, Settings
from tui.core.journal.reader import JournalReader
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.timeout(300)]

N_CTX = 65_536
API_KEY = "sk-ant-statusline-0123456789abcdef"
LINE_RE = re.compile(r"ctx ([\d.,k]+)/65\.5k (\d+)% \| reuse \d+% \| MCP (\d+)%")


def tmux(socket: str, *args: str) -> str:
    out = subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30)
    return out.stdout


def write_claude_home(home: Path, project: Path, command: str) -> None:
    """Onboarding done, the project trusted, the API key approved, and the status line configured."""
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    (home / ".claude" / "settings.json").write_text(
        json.dumps({"statusLine": {"type": "command", "command": command, "padding": 0}})
    )
    state = {
        "hasCompletedOnboarding": True,
        "theme": "dark",
        "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
        "projects": {str(project): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
    }
    (home / ".claude.json").write_text(json.dumps(state))


def wait_for_line(socket: str, pattern: re.Pattern[str], proxy_output: Callable[[], str]) -> re.Match[str]:
    """Poll the pane until the status line matches."""
    deadline = time.monotonic() + 200
    while True:
        pane = tmux(socket, "capture-pane", "-p", "-J")
        match = pattern.search(pane)
        if match is not None:
            return match
        assert time.monotonic() < deadline, f"no status line:\n{pane}\n{proxy_output()[-2000:]}"
        time.sleep(1)


def main_rows(journal: Path) -> list[RequestRecord]:
    return [r for r in JournalReader(journal).latest(100) if r.kind == "main" and r.status == 200]


def test_claude_code_shows_the_ctxbudget_status_line_and_findings_name_its_mcp_servers(
    llama_server: StartServer,
    claude_code: Path,
    mcp_filesystem: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = llama_server(ctx_size=N_CTX)
    proxy = start_proxy(server.url, tmp_path / "proxy")
    socket = f"ctxb-sl-{tmp_path.name[-12:]}"
    try:
        (tmp_path / "notes").mkdir()
        servers = [filesystem_mcp(mcp_filesystem, tmp_path / "project"),
                   filesystem_mcp(mcp_filesystem, tmp_path / "notes", name="notes")]  # fmt: skip
        project = make_claude_project(tmp_path, servers)
        exe = Path(sys.executable).parent / "ctxbudget"
        command = shlex.join(
            [str(exe), "statusline", "--journal", str(proxy.journal_path), "--upstream", server.url]
        )
        write_claude_home(project.home, project.root, command)
        env = claude_env(proxy.url, project.home, API_KEY, {"TERM": "xterm-256color"})
        env_args = [f"{k}={v}" for k, v in env.items()]
        claude = shlex.join(["env", "-i", *env_args, str(claude_code), "--model", "tiny"])
        tmux(socket, "new-session", "-d", "-x", "160", "-y", "40", "-c", str(project.root), claude)
        deadline = time.monotonic() + 60
        while "❯" not in (pane := tmux(socket, "capture-pane", "-p")) and ">" not in pane:
            assert time.monotonic() < deadline, pane
            time.sleep(0.5)
        time.sleep(2)
        tmux(socket, "send-keys", "-t", "0", "list the files", "Enter")
        first = wait_for_line(socket, LINE_RE, proxy.output)
        # A second turn: by now every MCP server is connected, and the forecast has a growth to go by.
        tmux(socket, "send-keys", "-t", "0", "and the notes", "Enter")
        second = wait_for_line(
            socket, re.compile(LINE_RE.pattern + r" \| ~(\d+) turns? to full"), proxy.output
        )
    finally:
        tmux(socket, "kill-server")
        proxy.stop()
    rows = main_rows(proxy.journal_path)
    assert len(rows) >= 2, proxy.output()[-2000:]
    tokens = [r.prompt_tokens or 0 for r in rows]
    expected = {f"{t / 1000:.1f}k" if t >= 10_000 else f"{t:,}" for t in tokens}
    assert first.group(1) in expected and second.group(1) in expected, (
        first.group(0),
        second.group(0),
        tokens,
    )
    newest = rows[-1].anatomy
    assert newest is not None and newest.categories["mcp_tools"] > 0 and int(second.group(3)) > 0

    # No MCP tool was ever called: findings name both servers with their per-request cost.
    settings = Settings(proxy=ProxySettings(upstream=server.url))
    parser = argparse.ArgumentParser(prog="ctxbudget")
    findings_cmd.register(parser.add_subparsers(dest="command"), parser)
    args = parser.parse_args(["findings", "--json", "--journal", str(proxy.journal_path)])
    assert findings_cmd.run_findings(args, settings) == 0
    report = json.loads(capsys.readouterr().out)
    unused = {f["data"]["server"]: f["data"] for f in report["findings"] if f["kind"] == "mcp_unused"}
    assert set(unused) == {"filesystem", "notes"}, report
    for name, data in unused.items():
        assert data["tokens_per_request"] == newest.mcp_servers[name]["tokens"] > 0
        assert data["tools"] == newest.mcp_servers[name]["tools"]
    print(first.group(0), "|", second.group(0), "|", {n: d["tokens_per_request"] for n, d in unused.items()})
