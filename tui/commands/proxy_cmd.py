"""`ctxbudget proxy`: run the proxy headless, printing one line per journaled request."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tui.core.config import Settings, with_overrides
from tui.core.redact import redact_query, redact_url
from tui.core.terminal_text import printable

if TYPE_CHECKING:
    from tui.core.proxy.service import ProxyService
    from tui.core.records import RequestRecord

TOP_CATEGORIES = 3


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `proxy` subcommand."""
    parser = subparsers.add_parser(
        "proxy",
        help="run the recording proxy without the dashboard",
        description=(
            "Forward every request to llama-server unchanged and journal where its context tokens go. "
            'Point the agent at it with `eval "$(ctxbudget env)"`.'
        ),
    )
    add_proxy_options(parser)
    parser.add_argument("--quiet", action="store_true", help="do not print a line per request")
    parser.set_defaults(func=run_proxy)


def add_proxy_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `proxy` and anything else that starts the proxy."""
    parser.add_argument("--listen", metavar="HOST:PORT", help="listen address (default: proxy.listen)")
    parser.add_argument("--upstream", metavar="URL", help="llama-server base URL (default: proxy.upstream)")
    parser.add_argument(
        "--journal", metavar="PATH", default=argparse.SUPPRESS, help="journal file (default: user data dir)"
    )
    parser.add_argument(
        "--allow-remote", action="store_true", default=None, help="allow a non-loopback listen address"
    )
    parser.add_argument(
        "--mcp-server",
        action="append",
        default=[],
        metavar="NAME",
        help="MCP server name for tools named <server>_<tool> (repeatable; adds to anatomy.mcp_servers)",
    )


def apply_proxy_options(args: argparse.Namespace, settings: Settings) -> Settings:
    """Settings with the given command-line options applied."""
    settings = with_overrides(
        settings, "proxy", listen=args.listen, upstream=args.upstream, allow_remote=args.allow_remote
    )
    journal = getattr(args, "journal", None)
    if journal:
        settings = with_overrides(settings, "journal", path=str(Path(journal).expanduser()))
    if args.mcp_server:
        servers = [*settings.anatomy.mcp_servers, *(s for s in args.mcp_server if s)]
        settings = dataclasses.replace(
            settings, anatomy=dataclasses.replace(settings.anatomy, mcp_servers=servers)
        )
    return settings


def short_tokens(n: int) -> str:
    """12345 -> "12.3k"."""
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def format_record(record: RequestRecord) -> str:
    """One line: time, session, model, prompt tokens by top categories, cache reuse, TTFB, status."""
    clock = time.strftime("%H:%M:%S", time.localtime(record.ts))
    session = (record.session_id or "-")[:8]
    fields = [clock, f"{session:<8}", f"{record.method} {redact_query(record.path)}"]
    if record.user:  # team server
        fields.append(f"user {record.user}")
    if record.model:
        fields.append(record.model[:32])
    if record.kind and record.kind != "other":
        fields.append(record.kind)
    prompt = record.prompt_tokens
    if prompt is not None:
        top = ""
        if record.anatomy is not None:
            positive = ((n, c) for c, n in record.anatomy.categories.items() if n > 0)
            ranked = sorted(positive, reverse=True)[:TOP_CATEGORIES]
            top = " (" + ", ".join(f"{c} {short_tokens(n)}" for n, c in ranked) + ")" if ranked else ""
        fields.append(f"prompt {prompt:,}{top}")
    reused = record.reused_fraction
    if reused is not None:
        fields.append(f"reuse {reused:.0%}")
    if record.ttfb_ms is not None:
        fields.append(f"ttfb {record.ttfb_ms:,.0f} ms")
    fields.append(str(record.status))
    if record.error:
        fields.append(f"! {record.error}")
    elif record.unparsed_reason and record.dialect:
        fields.append(f"(unparsed: {record.unparsed_reason})")
    return printable("  ".join(fields))  # session, model and path come from the client


async def serve(service: ProxyService, out: TextIO) -> None:
    """Run until SIGINT/SIGTERM."""
    import asyncio
    import signal

    from tui.core.proxy.server_watch import serve_until

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await service.start()
    print(
        f"ctxbudget proxy: listening on {service.url} -> {redact_url(service.upstream)}; "
        f"journal {service.journal_path}; polling {redact_url(service.settings.server.url)} ([server] url)",
        file=out,
        flush=True,
    )
    await serve_until(service, stop)


def run_proxy(args: argparse.Namespace, settings: Settings) -> int:
    """Handler for `ctxbudget proxy`."""
    import asyncio

    from tui.core.proxy.service import JournalOpenError, ProxyService

    settings = apply_proxy_options(args, settings)
    out = sys.stdout

    def show(record: RequestRecord) -> None:
        if record.in_flight:
            return  # one line per request, when it ends
        print(format_record(record), file=out, flush=True)

    def problem(text: str | None) -> None:  # journal trouble is shown even with --quiet
        text = text or "journal ok again: rows are being committed"
        print(f"ctxbudget proxy: {text}", file=out, flush=True)

    service = ProxyService(settings, on_record=None if args.quiet else show)
    service.on_problem = problem
    try:
        asyncio.run(serve(service, out))
    except OSError as exc:
        reason = exc.strerror or exc
        print(
            f"ctxbudget proxy: cannot listen on {settings.proxy.listen} ([proxy] listen in "
            f"{settings.source}, or --listen): {reason}; pick a free address with --listen HOST:PORT",
            file=sys.stderr,
        )
        return 1
    except JournalOpenError as exc:
        print(f"ctxbudget proxy: {exc}", file=sys.stderr)
        return 1
    return 0
