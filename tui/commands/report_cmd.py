"""`ctxbudget report`: token, cache, latency and cost summaries per session and per day from the journal."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tui.commands.connect_opts import add_connect_options, local_journal, remote_from_args
from tui.core.config import Settings
from tui.core.report import FORMATS, render_report
from tui.core.report.prices import ReportSettings


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `report` subcommand."""
    parser = subparsers.add_parser(
        "report",
        help="summarise journaled traffic per session and per day",
        description=(
            "Requests, prompt tokens by category (MCP per server), output tokens, prefix-cache reuse, "
            "prompt length and latency percentiles, savings, energy and what the same traffic would "
            "cost on a cloud API, per session and per day."
        ),
    )
    parser.add_argument(
        "--since", metavar="DURATION|DATE", help="only rows since e.g. 2h, 1d, 7d or 2026-11-20 (local)"
    )
    parser.add_argument("--session", metavar="ID", help="only this session")
    parser.add_argument(
        "--by",
        choices=("session", "user"),
        default="session",
        help="group the table (and CSV rows) per session (default) or per team user",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default table)")
    parser.add_argument("--out", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument(
        "--journal", metavar="PATH", default=argparse.SUPPRESS, help="journal file (default: user data dir)"
    )
    add_connect_options(parser)
    parser.set_defaults(func=run_report)


def report_settings(settings: Settings) -> ReportSettings:
    """The [report] section (defaults until config.py carries it)."""
    section = getattr(settings, "report", None)
    return section if isinstance(section, ReportSettings) else ReportSettings()


def run_report(args: argparse.Namespace, settings: Settings) -> int:
    """Handler for `ctxbudget report`."""
    from tui.core.report import build_report, load_records, parse_since

    try:
        since_ts = parse_since(args.since) if args.since else None
    except ValueError as exc:
        print(f"ctxbudget report: {exc}", file=sys.stderr)
        return 2
    remote = remote_from_args(args)
    if remote is not None:
        from tui.core.serve.remote_source import RemoteError

        try:
            records = [
                r
                for r in remote.rows()
                if (since_ts is None or r.ts >= since_ts)
                and (args.session is None or r.session_id == args.session)
            ]
        except RemoteError as exc:
            print(f"ctxbudget report: {exc}", file=sys.stderr)
            return 1
    else:
        path = local_journal(args, settings, "report")
        if path is None:
            return 1
        records = load_records(path, since_ts, args.session)
    report = build_report(
        records, report_settings(settings), since_ts=since_ts, session=args.session, by=args.by
    )
    text = render_report(report, args.format)
    if args.out:
        out = Path(args.out).expanduser()
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            print(f"ctxbudget report: cannot write {out}: {exc.strerror}", file=sys.stderr)
            return 1
        print(f"wrote {args.format} report of {report.overall.requests} requests to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return 0
