"""Real Claude Code, interactive in one tmux pane; the `ctxbudget` console script (which starts the
server) in the pane beside it; the keys that reach outside the dashboard pressed for real: m + space
(switch an MCP server off and back on), c (Claude Code compacts) and r (restart the server)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from support.agents import claude_env, filesystem_mcp, make_claude_project
from support.llama import free_port
from support.processes import listening_pid
from test_e2e_claude_statusline import API_KEY

from tui.core.journal.reader import JournalReader
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.timeout(600)]
CONSOLE_SCRIPT = Path(sys.executable).with_name("ctxbudget")
BUDGET_TITLE = re.compile(r"#(\d+) (main|title|subagent|compact|count_tokens|other) \d{2}:\d{2}")
N_CTX = 65_536
T = TypeVar("T")


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, timeout=30).stdout


def until(check: Callable[[], T | None], what: str, seen: Callable[[], str], timeout: float = 180) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what} never happened; saw:\n{seen()}"
        time.sleep(0.5)


@pytest.fixture
def socket() -> Iterator[str]:
    assert shutil.which("tmux"), "tmux is needed for this test (CI installs it)"
    name = f"ctxb-e2e-{uuid.uuid4().hex[:8]}"
    yield name
    subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True)


def write_claude_home(home: Path, project: Path) -> None:
    """Onboarding done, the project trusted, the API key approved."""
    state = {
        "hasCompletedOnboarding": True,
        "theme": "dark",
        "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
        "projects": {str(project): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
    }
    (home / ".claude.json").write_text(json.dumps(state))


def test_claude_code_with_the_dashboard_beside_it(
    llama_server_bin: Path,
    tiny_model: Path,
    claude_code: Path,
    mcp_filesystem: Path,
    tmp_path: Path,
    socket: str,
) -> None:
    server_port, proxy_port = free_port(), free_port()
    server_url, proxy_url = f"http://127.0.0.1:{server_port}", f"http://127.0.0.1:{proxy_port}"
    journal = tmp_path / "journal.sqlite3"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[server]\nurl = "{server_url}"\nbinary = "{llama_server_bin}"\nmodel = "{tiny_model}"\n'
        f'ctx_size = {N_CTX}\nparallel = 1\nlog_file = "{tmp_path}/server.log"\nautostart = true\n'
        'extra_args = ["-t", "1", "-n", "16"]\npoll_interval = 0.5\n'
        f'[proxy]\nlisten = "127.0.0.1:{proxy_port}"\nupstream = "{server_url}"\n'
        f'[journal]\npath = "{journal}"\n[compact]\nmode = "pane"\n'
    )

    budget_titles: set[tuple[int, str]] = set()  # every (row id, kind) the budget panel showed

    def dash() -> str:
        screen = tmux(socket, "capture-pane", "-p", "-t", "dash")
        budget_titles.update((int(i), kind) for i, kind in BUDGET_TITLE.findall(screen))
        return screen

    def agent() -> str:
        return tmux(socket, "capture-pane", "-p", "-t", "agent")

    def rows() -> list[RequestRecord]:
        return [r for r in JournalReader(journal).latest(200) if not r.in_flight]

    def server_up() -> bool:
        try:
            return httpx.get(server_url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def switched_off() -> bool:
        state = httpx.get(proxy_url + "/_ctxbudget/state", timeout=5).json()
        return any(s["server"] == "filesystem" and not s["enabled"] for s in state["mcp"]["servers"])

    try:
        env = {"CTXBUDGET_DATA_DIR": str(tmp_path / "data"), "TERM": "xterm-256color"}
        start = shlex.join(
            ["env", *(f"{k}={v}" for k, v in env.items()), str(CONSOLE_SCRIPT), "--config", str(config)]
        )
        tmux(
            socket,
            "new-session",
            "-d",
            "-s",
            "dash",
            "-x",
            "140",
            "-y",
            "45",
            f"cd {tmp_path} && {start}; sleep 120",
        )
        until(server_up, "the dashboard starting llama-server ([server] autostart)", dash, timeout=120)
        project = make_claude_project(tmp_path, [filesystem_mcp(mcp_filesystem, tmp_path / "project")])
        write_claude_home(project.home, project.root)
        claude_vars = claude_env(
            proxy_url,
            project.home,
            API_KEY,
            {"TERM": "xterm-256color", "CLAUDE_CODE_MAX_OUTPUT_TOKENS": "64"},
        )
        # As a user runs it: with "nonessential traffic" on, Claude Code asks for a session title each turn
        # (a tool-less request with a JSON-schema answer), the side request the budget must not follow.
        del claude_vars["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"]
        claude = shlex.join(
            ["env", "-i", *(f"{k}={v}" for k, v in claude_vars.items()), str(claude_code), "--model", "tiny"]
        )
        tmux(
            socket,
            "new-session",
            "-d",
            "-s",
            "agent",
            "-x",
            "140",
            "-y",
            "40",
            "-c",
            str(project.root),
            claude,
        )
        until(lambda: "❯" in agent() or ">" in agent(), "Claude Code's prompt", agent, timeout=60)
        time.sleep(2)

        def turn(text: str, after: int) -> RequestRecord:
            tmux(socket, "send-keys", "-t", "agent", text, "Enter")
            return until(
                lambda: next(
                    (r for r in reversed(rows()) if r.kind == "main" and r.id > after and r.status == 200),
                    None,
                ),
                f"a main request after {text!r}",
                lambda: agent() + "\n---\n" + dash(),
            )

        first = turn("list the files", 0)
        assert first.anatomy is not None and "filesystem" in first.anatomy.mcp_servers
        # Counts are the server's own, and the budget follows the main request, not later side requests.
        assert first.usage.prompt_tokens == sum(
            p.tokens for p in (JournalReader(journal).get(first.id) or first).anatomy.parts
        )  # type: ignore[union-attr]
        until(lambda: f"#{first.id} main" in dash(), "the budget on the main request", dash)
        tools = first.anatomy.mcp_servers["filesystem"]["tools"]

        # m + space: the MCP pane, the dialog (Cancel first), Switch off.
        tmux(socket, "send-keys", "-t", "dash", "m")
        # The pane with the proxy's switches read ("this run: ..."), as a user sees it before acting.
        until(lambda: "filesystem" in dash() and "this run:" in dash(), "the MCP pane", dash)
        tmux(socket, "send-keys", "-t", "dash", "Space")
        until(lambda: "Switch off" in dash(), "the switch-off dialog", dash)
        tmux(socket, "send-keys", "-t", "dash", "Tab", "Enter")
        until(switched_off, "filesystem switched off in the proxy", dash)
        second = turn("and now?", first.id)
        assert second.anatomy is not None and "filesystem" not in second.anatomy.mcp_servers
        assert second.mcp_saved_tokens and second.mcp_saved_tokens > 0
        # Still listed while off (selected = the newest request, which went out without it): back on.
        until(lambda: "filesystem" in dash(), "filesystem still listed while off", dash)
        tmux(socket, "send-keys", "-t", "dash", "Space")
        until(lambda: "Switch on" in dash(), "the switch-on dialog", dash)
        tmux(socket, "send-keys", "-t", "dash", "Tab", "Enter")
        until(lambda: not switched_off(), "filesystem switched on again", dash)
        third = turn("thanks", second.id)
        assert third.anatomy is not None and third.anatomy.mcp_servers["filesystem"]["tools"] == tools

        # c: pane mode types /compact into Claude Code, which sends its summary request.
        tmux(socket, "send-keys", "-t", "dash", "c")
        until(lambda: "pane: type /compact" in dash(), "the compact dialog", dash)
        tmux(socket, "send-keys", "-t", "dash", "Tab", "Enter")
        until(lambda: "sent /compact to tmux pane" in dash(), "/compact sent", dash)
        until(
            lambda: any(r.kind == "compact" and r.id > third.id for r in rows()),
            "Claude Code's compaction request",
            lambda: agent() + "\n---\n" + dash(),
        )
        last = max(r.id for r in rows())
        time.sleep(2)

        # r: restart the server from the dashboard; the session goes on afterwards.
        before = listening_pid(server_port)
        assert before is not None
        tmux(socket, "send-keys", "-t", "dash", "r")
        until(lambda: "Restart" in dash() and "Cancel" in dash(), "the restart dialog", dash)
        tmux(socket, "send-keys", "-t", "dash", "Tab", "Enter")
        until(
            lambda: server_up() and listening_pid(server_port) not in (None, before),
            "a new llama-server process listening",
            dash,
            timeout=120,
        )
        fourth = turn("one more", last)
        assert fourth.status == 200
    finally:
        tmux(socket, "kill-server")
        server_pid = listening_pid(server_port)  # the dashboard-started server outlives it
        if server_pid is not None:
            os.kill(server_pid, signal.SIGKILL)
    session_ids = {r.session_id for r in rows() if r.kind == "main"}
    assert len(session_ids) == 1  # one Claude Code session throughout, restart included
    # Claude Code's title request (2.1.197 sends it before the first turn's main request) is booked as a
    # title; the budget showed it only while the session had no main request, then the main ones, and not
    # the /compact summary request that came after them either.
    titles = [r.id for r in rows() if r.kind == "title"]
    assert titles and min(titles) < first.id, [(r.id, r.kind) for r in rows()]
    assert (first.id, "main") in budget_titles, budget_titles
    assert not [(i, kind) for i, kind in budget_titles if kind != "main" and i > first.id], budget_titles
