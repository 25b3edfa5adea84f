"""`ctxbudget findings`: what to change, what it saves, and the key or command to apply it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.core.config import Settings

if TYPE_CHECKING:
    from tui.core.insight.model import FindingsReport


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


def render_text(report: FindingsReport) -> str:
    """The human listing: one block per finding, best first."""
    speed = f", prompt speed {report.prompt_per_second:,.0f} tok/s" if report.prompt_per_second else ""
    lines = [f"session {report.session or '-'}: {report.requests} requests{speed}"]
    if not report.findings:
        lines.append("no findings: nothing in this session is worth changing")
    for i, finding in enumerate(report.findings, 1):
        lines.append("")
        lines.append(f"{i}. {finding.title}")
        lines.extend(f"   {line}" for line in finding.lines)
        lines.append(f"   apply: {finding.apply}")
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines)


def run_findings(args: argparse.Namespace, settings: Settings) -> int:
    """Handler for `ctxbudget findings`."""
    import json

    from tui.core.insight.gather import SessionNotFound, build_findings

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
        print(render_text(report))
    return 0
