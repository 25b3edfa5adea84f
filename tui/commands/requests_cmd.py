"""`ctxbudget requests`: the newest journal rows, as a table or JSON lines."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from tui.commands.connect_opts import add_connect_options, local_journal, remote_from_args
from tui.core.config import Settings
from tui.core.redact import redact_query
from tui.core.terminal_text import printable

if TYPE_CHECKING:
    from tui.core.records import RequestRecord


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `requests` subcommand."""
    parser = subparsers.add_parser(
        "requests",
        help="list the newest journaled requests",
        description="List the newest rows of the traffic journal, oldest first.",
    )
    parser.add_argument("--last", type=int, default=20, metavar="N", help="how many rows (default 20)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line (JSONL), newest last")
    parser.add_argument(
        "--journal", metavar="PATH", default=argparse.SUPPRESS, help="journal file (default: user data dir)"
    )
    add_connect_options(parser)
    parser.set_defaults(func=run_requests)


def table_line(record: RequestRecord) -> str:
    """One row of the human table."""
    clock = time.strftime("%m-%d %H:%M:%S", time.localtime(record.ts))
    prompt = record.prompt_tokens
    reused = record.reused_fraction
    note = record.error or record.unparsed_reason or ""
    if record.user:  # team server: whose request
        note = f"user {record.user}" + (f"; {note}" if note else "")
    line = (
        f"{record.id:>6}  {clock}  {(record.session_id or '-')[:8]:<8}  {record.kind[:8]:<8}  "
        f"{'...' if record.in_flight else record.status:>3}  {'-' if prompt is None else f'{prompt:,}':>9}  "
        f"{'-' if reused is None else f'{reused:.0%}':>5}  "
        f"{'-' if record.ttfb_ms is None else f'{record.ttfb_ms:,.0f}':>7}  "
        f"{record.method} {redact_query(record.path)}  {record.model[:24]}  {note[:60]}"
    ).rstrip()
    return printable(line)  # session, model and path come from the client: no terminal escapes


HEADER = (
    f"{'id':>6}  {'time':<14}  {'session':<8}  {'kind':<8}  {'st':>3}  {'prompt':>9}  {'reuse':>5}  "
    f"{'ttfb ms':>7}  request"
)


def run_requests(args: argparse.Namespace, settings: Settings) -> int:
    """Handler for `ctxbudget requests`."""
    import orjson

    from tui.core.journal.reader import JournalReader

    remote = remote_from_args(args)
    if remote is not None:
        from tui.core.serve.remote_source import RemoteError

        try:
            records = remote.latest(max(args.last, 0))
            history = remote.latest(max(args.last, 500)) if args.json else records
            remote_n_ctx: int | None = remote.info().get("n_ctx_slot") if args.json else None
        except RemoteError as exc:
            print(f"ctxbudget requests: {exc}", file=sys.stderr)
            return 1
    else:
        path = local_journal(args, settings, "requests")
        if path is None:
            return 1
        reader = JournalReader(path)
        try:
            records = reader.latest(max(args.last, 0))
            history = reader.latest(max(args.last, 500)) if args.json else records  # the forecast's turns
        finally:
            reader.close()
    if args.json:
        from tui.core.insight.forecast import agent_window, forecasts_by_row
        from tui.core.insight.window import slot_n_ctx

        if remote is not None:
            n_ctx = remote_n_ctx
        else:
            n_ctx = slot_n_ctx(settings.proxy.upstream, settings.server.api_key, 1.0) or None
        forecasts = forecasts_by_row(history, n_ctx, agent_window(n_ctx, settings.agent.context_window))
        out = sys.stdout.buffer
        for record in records:
            row = record.to_json() | {"forecast": forecasts[record.id].to_json()}
            row["path"] = redact_query(record.path)  # rows journaled before query redaction existed
            out.write(orjson.dumps(row) + b"\n")
        out.flush()
        return 0
    print(HEADER)
    for record in records:
        print(table_line(record))
    return 0
