"""End to end: real Claude Code -> ``ctxbudget proxy`` -> real llama-server, then read the journal."""

from __future__ import annotations

import re
import secrets
import time
from pathlib import Path

import pytest
from support.agents import filesystem_mcp, list_mcp_tools, make_claude_project, run_claude_print
from support.llama import RunningServer, StartServer
from support.proxy_process import ProxyProcess, start_proxy

from tui.core.journal.reader import JournalReader
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.slow]

JOURNAL_TIMEOUT_S = 60.0


def _wait_for_messages(proxy: ProxyProcess, timeout: float = JOURNAL_TIMEOUT_S) -> list[RequestRecord]:
    """Journal rows for /v1/messages with their anatomy, once the proxy has analyzed them."""
    reader = JournalReader(proxy.journal_path)
    deadline = time.monotonic() + timeout
    try:
        while True:
            rows = [r for r in reader.latest(100) if r.path.startswith("/v1/messages") and r.method == "POST"]
            if rows and all(r.anatomy is not None or r.unparsed_reason for r in rows):
                return [reader.get(r.id) or r for r in rows]
            if time.monotonic() > deadline:
                raise AssertionError(f"no analyzed /v1/messages row:\n{proxy.output()[-3000:]}")
            time.sleep(0.2)
    finally:
        reader.close()


def _server_prompt_sizes(server: RunningServer) -> list[int]:
    return [int(n) for n in re.findall(r"new prompt, .*task\.n_tokens = (\d+)", server.log_text())]


def test_claude_code_context_is_journaled_through_the_proxy(
    llama_server: StartServer, claude_code: Path, mcp_filesystem: Path, tmp_path: Path
) -> None:
    server = llama_server(ctx_size=65536)
    proxy = start_proxy(server.url, tmp_path / "proxy")
    api_key = "sk-ant-e2e-" + secrets.token_hex(8)
    try:
        fs_server = filesystem_mcp(mcp_filesystem, tmp_path / "project")
        project = make_claude_project(tmp_path, [fs_server])
        expected_fs_tools = set(list_mcp_tools(fs_server))
        started = time.monotonic()
        run = run_claude_print(claude_code, project, proxy.url, "list files", api_key=api_key)
        elapsed = time.monotonic() - started
        assert run.returncode == 0, (
            f"claude exit {run.returncode} after {elapsed:.1f}s\nstdout: {run.stdout[-2000:]}\n"
            f"stderr: {run.stderr[-2000:]}\nproxy: {proxy.output()[-2000:]}\n"
            f"server: {server.log_text()[-2000:]}"
        )
        rows = _wait_for_messages(proxy)
    finally:
        exit_code = proxy.stop()
    assert exit_code == 0, proxy.output()[-3000:]

    # Claude Code's main request: the one carrying the tool list.
    main = max(rows, key=lambda r: len(r.anatomy.tools) if r.anatomy else -1)
    anatomy = main.anatomy
    assert anatomy is not None, main.unparsed_reason
    assert main.status == 200 and main.dialect == "anthropic" and anatomy.dialect == "anthropic"
    assert main.stream
    categories = anatomy.categories
    for category in ("system", "tools", "mcp_tools", "latest_user"):
        assert categories[category] > 0, (category, categories)

    builtins = {tool.name for tool in anatomy.tools if tool.server is None}
    assert {"Bash", "Read"} <= builtins, builtins
    # Claude Code names them mcp__filesystem__<tool>; accept the journal keeping either form.
    journaled_fs_tools = {
        tool.name.removeprefix("mcp__filesystem__") for tool in anatomy.tools if tool.server == "filesystem"
    }
    assert journaled_fs_tools == expected_fs_tools
    assert anatomy.mcp_servers["filesystem"]["tools"] == len(expected_fs_tools)
    assert anatomy.mcp_servers["filesystem"]["tokens"] == categories["mcp_tools"] - sum(
        v["tokens"] for k, v in anatomy.mcp_servers.items() if k != "filesystem"
    )

    # The prompt size the proxy journaled is the one llama-server processed for that request.
    assert main.usage.prompt_tokens in _server_prompt_sizes(server)
    assert anatomy.total_tokens >= main.usage.prompt_tokens

    # Secrets never reach disk; the proxy printed a line for the request.
    for path in proxy.journal_path.parent.iterdir():
        if path.is_file():
            assert api_key.encode() not in path.read_bytes(), path
    assert "/v1/messages" in proxy.output()
