"""Real Claude Code, interactive in tmux, with `ctxbudget statusline` as its statusLine command."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.agents import claude_env, filesystem_mcp, make_claude_project
from support.llama import StartServer
from support.proxy_process import start_proxy

from tui.core.journal.reader import JournalReader

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


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_claude_code_shows_the_ctxbudget_status_line(
    llama_server: StartServer, claude_code: Path, mcp_filesystem: Path, tmp_path: Path
) -> None:
    server = llama_server(ctx_size=N_CTX)
    proxy = start_proxy(server.url, tmp_path / "proxy")
    socket = f"ctxb-sl-{tmp_path.name[-12:]}"
    try:
        project = make_claude_project(tmp_path, [filesystem_mcp(mcp_filesystem, tmp_path / "project")])
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
        deadline = time.monotonic() + 200
        match = None
        while match is None:
            pane = tmux(socket, "capture-pane", "-p", "-J")
            match = LINE_RE.search(pane)
            if match is None:
                assert time.monotonic() < deadline, f"no status line:\n{pane}\n{proxy.output()[-2000:]}"
                time.sleep(1)
    finally:
        tmux(socket, "kill-server")
        proxy.stop()
    rows = [r for r in JournalReader(proxy.journal_path).latest(100) if r.kind == "main" and r.status == 200]
    assert rows, proxy.output()[-2000:]
    shown = match.group(1)
    tokens = [r.prompt_tokens or 0 for r in rows]
    expected = {f"{t / 1000:.1f}k" if t >= 10_000 else f"{t:,}" for t in tokens}
    assert shown in expected, (shown, tokens)
    newest = rows[-1].anatomy
    assert newest is not None and newest.categories["mcp_tools"] > 0 and int(match.group(3)) > 0
    assert "filesystem" in newest.mcp_servers
    print(match.group(0))
