"""opencode for real: the pinned npm release, headless (`opencode run`), through `ctxbudget proxy` to the
real llama-server with SmolLM2, the filesystem MCP server and one with resources; the journal's anatomy
against the server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.agents import (
    filesystem_mcp,
    list_mcp_tools,
    make_opencode_project,
    resources_mcp,
    run_opencode,
)
from support.llama import StartServer
from support.proxy_process import start_proxy
from support.real_model import TOOL_TEMPLATE

from tui.core.anatomy.model import MCP_HELPERS_SERVER
from tui.core.journal.reader import JournalReader

pytestmark = [pytest.mark.llama, pytest.mark.timeout(900)]

CONTEXT = 16384  # opencode's first request is ~10k tokens: past SmolLM2's 8,192, so the window is raised
TASK_TOKENS = re.compile(r"new prompt, .*task\.n_tokens = (\d+)")


def test_opencode_headless_through_the_proxy(
    llama_server: StartServer, real_model: Path, opencode: Path, mcp_filesystem: Path, tmp_path: Path
) -> None:
    server = llama_server(
        real_model,
        ctx_size=CONTEXT,
        n_predict=32,
        extra_args=(
            "--jinja",
            "--chat-template-file",
            str(TOOL_TEMPLATE),
            "--override-kv",
            f"llama.context_length=int:{CONTEXT}",
        ),
    )
    proxy = start_proxy(
        server.url, tmp_path / "proxy", extra_args=("--mcp-server", "filesystem", "--mcp-server", "notes")
    )
    try:
        files = tmp_path / "files"
        files.mkdir()
        fs, notes = filesystem_mcp(mcp_filesystem, files), resources_mcp("notes")
        project = make_opencode_project(tmp_path / "agent", proxy.url, [fs, notes], context=CONTEXT)
        done = run_opencode(opencode, project, "say hi")
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    finally:
        proxy.stop()
    rows = JournalReader(proxy.journal_path).latest(20)
    assert rows and all(r.state == "done" and r.status == 200 for r in rows), [
        (r.state, r.status) for r in rows
    ]
    main = [r for r in rows if r.kind == "main"]
    assert main, [r.kind for r in rows]
    row = JournalReader(proxy.journal_path).get(main[-1].id)  # with its parts
    assert row is not None
    assert row.dialect == "openai" and row.session_id.startswith("ses_")  # opencode's x-session-id
    anatomy = row.anatomy
    assert anatomy is not None and anatomy.exact and anatomy.rendered and not anatomy.dropped
    # The filesystem server's tools, found by the configured name (opencode names them <server>_<tool>).
    assert anatomy.mcp_servers["filesystem"]["tools"] == len(list_mcp_tools(fs))
    assert anatomy.mcp_servers["notes"]["tools"] == len(list_mcp_tools(notes)) == 1
    # A server with resources makes opencode add its three resource tools: one "(helpers)" group.
    helpers = {t.name for t in anatomy.tools if t.server == MCP_HELPERS_SERVER}
    expected = {"list_mcp_resources", "list_mcp_resource_templates", "read_mcp_resource"}
    assert helpers == expected, anatomy.tools
    assert anatomy.mcp_servers[MCP_HELPERS_SERVER]["tools"] == 3
    # Counts are the server's: the parts and the template add up to the prompt the log shows.
    logged = [int(n) for n in TASK_TOKENS.findall(server.log_text())]
    assert row.usage.prompt_tokens in logged
    assert sum(p.tokens for p in anatomy.parts) == row.usage.prompt_tokens == anatomy.total_tokens
