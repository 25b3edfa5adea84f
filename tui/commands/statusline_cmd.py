"""`ctxbudget statusline`: Claude Code's statusLine command (reads its JSON on stdin, prints one line)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.core.config import Settings

# Claude Code runs it on every update: with --journal it starts without the parser or the config
# (tui/launch.py) and imports only sqlite3, json and the pure forecast (bench/statusline_bench.py).
PROPS_TIMEOUT_S = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options, shared by the full parser and the fast entry."""
    parser.add_argument("--journal", metavar="PATH", help="journal file (default: from the config)")
    parser.add_argument(
        "--upstream", metavar="URL", help="llama-server to ask for its per-slot n_ctx (/props)"
    )
    parser.add_argument("--n-ctx", type=int, metavar="N", help="per-slot n_ctx (skips asking the server)")


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `statusline` subcommand."""
    parser = subparsers.add_parser(
        "statusline",
        help="Claude Code status line: real prompt tokens / slot n_ctx, reuse, MCP share, forecast",
        description=(
            "A Claude Code statusLine command: reads the session JSON Claude Code sends on stdin and prints "
            "one line from that session's newest journal row. `ctxbudget env --statusline` prints the "
            "settings.json snippet."
        ),
    )
    add_arguments(parser)
    parser.set_defaults(func=run_statusline)


def settings_snippet(settings: Settings) -> dict[str, Any]:
    """The statusLine entry of Claude Code's settings.json, with absolute paths (Claude Code's cwd varies)."""
    import shlex
    import shutil

    exe = shutil.which("ctxbudget") or "ctxbudget"
    argv0 = Path(sys.argv[0])
    if argv0.name == "ctxbudget" and argv0.exists():
        exe = str(argv0.resolve())
    command = [exe, "statusline", "--journal", str(settings.journal_path().resolve())]
    command += ["--upstream", settings.proxy.upstream.rstrip("/")]
    return {"statusLine": {"type": "command", "command": shlex.join(command), "padding": 0}}


def status_line(stdin_text: str, journal: Path, upstream: str | None, n_ctx: int | None) -> str:
    """The line for the session named in Claude Code's JSON."""
    import json

    from tui.core.insight.gauge import read_gauge, render
    from tui.core.insight.window import env_window, slot_n_ctx

    try:
        data = json.loads(stdin_text) if stdin_text.strip() else {}
    except ValueError:
        return "ctxbudget: stdin is not Claude Code's status JSON"
    session = data.get("session_id") if isinstance(data, dict) else None
    if not isinstance(session, str) or not session:
        return "ctxbudget: no session_id in the status JSON"
    if not journal.exists():
        return f"ctxbudget: no journal at {journal}"
    window = env_window()
    if n_ctx is None and upstream:
        n_ctx = slot_n_ctx(upstream, timeout=PROPS_TIMEOUT_S)
    n_ctx = n_ctx or window
    try:
        gauge = read_gauge(journal, session, n_ctx, window or n_ctx)
    except Exception as exc:  # noqa: BLE001 - a status line must print something, never a traceback
        return f"ctxbudget: journal unreadable ({type(exc).__name__})"
    if gauge is None:
        return "ctxbudget: no request of this session yet"
    return render(gauge)


def run_statusline(args: argparse.Namespace, settings: Settings | None) -> int:
    """Handler for `ctxbudget statusline` (settings None on the fast entry: --journal was given)."""
    journal = args.journal or (str(settings.journal_path()) if settings else None)
    if journal is None:
        print("ctxbudget: --journal is needed", file=sys.stdout)
        return 0
    upstream = args.upstream or (settings.proxy.upstream if settings else None)
    from tui.core.terminal_text import printable

    print(printable(status_line(sys.stdin.read(), Path(journal).expanduser(), upstream, args.n_ctx)))
    return 0


def fast_main(argv: list[str]) -> int:
    """`ctxbudget statusline --journal PATH ...` without the full parser or the config."""
    parser = argparse.ArgumentParser(prog="ctxbudget statusline")
    add_arguments(parser)
    return run_statusline(parser.parse_args(argv), None)
