"""Wall time of `ctxbudget statusline` (Claude Code's statusLine command) on a large journal.

Runs the installed console script as Claude Code does (a fresh process, JSON on stdin) against a
journal of many sessions, interleaved with a bare `python -c pass` so the interpreter's own start-up is
visible next to it. Target: median well under 100 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tui.core.journal.schema import connect


def anatomy(prompt: int) -> str:
    """A Claude-Code-sized anatomy JSON (categories, 40 tools, MCP servers) as the journal stores it."""
    tools = [
        {"name": f"tool{i}", "server": "filesystem" if i > 30 else None, "tokens": 300} for i in range(40)
    ]
    return json.dumps({
        "dialect": "anthropic", "counter": "llama-server", "exact": True, "model": "m", "stream": True,
        "total_tokens": prompt, "tools": tools, "mcp_servers": {"filesystem": {"tools": 9, "tokens": 2_700}},
        "categories": {"system": 3_000, "tools": 9_000, "mcp_tools": 2_700, "history": prompt - 14_700},
    })  # fmt: skip


def build_journal(path: Path, sessions: int, turns: int) -> None:
    """sessions x turns main rows, growing by ~900 tokens a turn."""
    conn = connect(path)
    rows = []
    for s in range(sessions):
        for t in range(turns):
            prompt = 20_000 + 900 * t
            usage = json.dumps({"prompt_tokens": prompt, "cached_tokens": prompt - 900, "output_tokens": 50})
            rows.append(
                (time.time(), "POST", "/v1/messages", 200, f"session-{s}", "main", usage, anatomy(prompt))
            )
    conn.executemany(
        "INSERT INTO requests (ts, method, path, status, session_id, kind, usage, anatomy) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.close()


def timed(argv: list[str], stdin: str) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=True)
    return (time.perf_counter() - started) * 1000, out.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--turns", type=int, default=100)
    args = parser.parse_args()
    exe = shutil.which("ctxbudget", path=str(Path(sys.executable).parent)) or "ctxbudget"
    with tempfile.TemporaryDirectory() as tmp:
        journal = Path(tmp) / "journal.sqlite3"
        build_journal(journal, args.sessions, args.turns)
        stdin = json.dumps({"session_id": f"session-{args.sessions // 2}", "model": {"id": "m"}})
        cmd = [exe, "statusline", "--journal", str(journal), "--n-ctx", "131072"]
        bare = [sys.executable, "-c", "pass"]
        line = timed(cmd, stdin)[1]
        status_ms, bare_ms = [], []
        for _ in range(args.runs):  # interleaved so machine noise hits both alike
            status_ms.append(timed(cmd, stdin)[0])
            bare_ms.append(timed(bare, "")[0])
    rows = args.sessions * args.turns
    print(f"journal: {rows:,} rows; line: {line.strip()}")
    for name, values in (("ctxbudget statusline", status_ms), ("python -c pass", bare_ms)):
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(
            f"{name:<22} median {statistics.median(values):6.1f} ms  p90 {p90:6.1f} ms  ({len(values)} runs)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
