"""`ctxbudget findings`: what to change, what it saves, and the key or command to apply it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tui.core.config import Settings
from tui.core.terminal_text import printable_lines


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `findings` subcommand."""
    parser = subparsers.add_parser(
        "findings",
        help="what to change in a session and what it saves",
        description=(
            "Findings for one session of the journal, ranked by tokens (or seconds of prefill) saved: "
            "MCP servers never called, dominant tool results and what slim_results saves on them, "
            "cache breaks by cause, history share, requests that overflowed the slot."
        ),
    )
    parser.add_argument("--session", metavar="ID", help="session id or a unique prefix (default: the newest)")
    parser.add_argument("--json", action="store_true", help="print the findings as one JSON document")
    parser.add_argument(
        "--journal", metavar="PATH", default=argparse.SUPPRESS, help="journal file (default: user data dir)"
    )
    parser.set_defaults(func=run_findings)


def run_findings(args: argparse.Namespace, settings: Settings) -> int:
    """Handler for `ctxbudget findings`."""
    import json

    from tui.core.insight.gather import SessionNotFound, build_findings
    from tui.core.insight.model import render_text

    journal = getattr(args, "journal", None)
    path = Path(journal).expanduser() if journal else settings.journal_path()
    if not path.exists():
        print(f"ctxbudget findings: no journal at {path} (run `ctxbudget proxy` first)", file=sys.stderr)
        return 1
    try:
        report = build_findings(path, settings, args.session)
    except SessionNotFound as exc:
        print(f"ctxbudget findings: {exc}; list sessions with `ctxbudget requests`", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print(printable_lines(render_text(report)))  # names MCP servers and sessions from requests
    return 0
