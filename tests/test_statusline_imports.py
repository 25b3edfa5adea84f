"""`ctxbudget statusline --journal ...` runs on every Claude Code update: it must import nothing heavy."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "textual", "aiohttp", "httpx", "orjson", "tiktoken", "gguf", "numpy", "platformdirs", "tomllib",
    "statistics", "ssl", "tui.cli", "tui.core.config", "tui.core.journal", "tui.core.records",
    "tui.core.transforms", "tui.core.proxy", "tui.core.tokens",
)  # fmt: skip

SCRIPT = (
    "import json, sys\n"
    "sys.argv = ['ctxbudget', *json.loads(sys.argv[1])]\n"
    "import tui.launch\n"
    "tui.launch.main()\n"
    "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
)


def test_statusline_fast_entry_imports_no_heavy_module(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite3"
    with sqlite3.connect(journal) as conn:  # an empty journal of the real schema's shape
        conn.execute("CREATE TABLE requests (id INTEGER, session_id TEXT, status INTEGER, kind TEXT, "
                     "usage TEXT, anatomy TEXT)")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_", "CTXBUDGET"))}
    argv = ["statusline", "--journal", str(journal), "--n-ctx", "65536"]
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(argv)], input='{"session_id": "abc"}', capture_output=True,
        text=True, env=env, cwd=tmp_path, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ctxbudget: no request of this session yet\n"
    loaded = json.loads(out.stderr.strip().splitlines()[-1])
    heavy = sorted(m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert not heavy, f"the status line imports {heavy}; import them only in the full CLI"


def test_env_statusline_snippet_runs_as_printed(tmp_path: Path) -> None:
    import shlex

    from tui.commands.statusline_cmd import settings_snippet
    from tui.core.config import JournalSettings, ProxySettings, Settings

    journal = tmp_path / "journal.sqlite3"
    with sqlite3.connect(journal) as conn:
        conn.execute("CREATE TABLE requests (id INTEGER, session_id TEXT, status INTEGER, kind TEXT, "
                     "usage TEXT, anatomy TEXT)")  # fmt: skip
        conn.execute(
            "INSERT INTO requests VALUES (1, 's1', 200, 'main', ?, ?)",
            (json.dumps({"prompt_tokens": 30_000, "cached_tokens": 29_000}),
             json.dumps({"categories": {"system": 3_000, "mcp_tools": 3_000, "history": 24_000}})),
        )  # fmt: skip
    settings = Settings(
        journal=JournalSettings(path=str(journal)), proxy=ProxySettings(upstream="http://127.0.0.1:9")
    )
    entry = settings_snippet(settings)["statusLine"]
    assert entry["type"] == "command"
    argv = shlex.split(entry["command"])
    assert argv[1:] == ["statusline", "--journal", str(journal), "--upstream", "http://127.0.0.1:9"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE_", "CTXBUDGET"))}
    env["CLAUDE_CODE_AUTO_COMPACT_WINDOW"] = "131072"  # as `ctxbudget env` exports it; port 9 is closed
    out = subprocess.run(
        [sys.executable, "-m", "tui.launch", *argv[1:]], input='{"session_id": "s1"}', capture_output=True,
        text=True, env=env, cwd=tmp_path, timeout=30,
    )  # fmt: skip
    assert out.stdout == "ctx 30.0k/131.1k 23% | reuse 97% | MCP 10%\n", out.stderr
