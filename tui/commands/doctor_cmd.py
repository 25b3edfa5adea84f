"""`ctxbudget doctor`: check a planned or running llama-server setup and print pass/warn/fail lines."""

from __future__ import annotations

import argparse
from typing import Any

from tui.commands.connect_opts import add_connect_options, remote_from_args
from tui.core.config import Settings


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `doctor` subcommand."""
    parser = subparsers.add_parser(
        "doctor",
        help="check context size, slots, KV memory and logging of a planned or running llama-server",
        description="Check a llama-server setup: the running server at [server] url, or the planned launch "
        "given by [server] model/ctx_size/parallel (or --model/--ctx-size/--parallel). Exit code 1 if a "
        "check fails.",
    )
    # SUPPRESS keeps the root parser's --config value when the option is not repeated here.
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")
    parser.add_argument("--json", action="store_true", help='print [{"check","status","message","fix"}]')
    parser.add_argument("--server", metavar="URL", help="llama-server URL to check (default: [server] url)")
    parser.add_argument("--model", metavar="PATH", help="GGUF model of the planned launch")
    parser.add_argument("--ctx-size", type=int, metavar="N", help="planned -c (total context cells)")
    parser.add_argument("--parallel", type=int, metavar="N", help="planned -np (0 = auto: 4 unified slots)")
    add_connect_options(parser)
    parser.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Run every check and print the results; 1 when any check fails."""
    import asyncio

    from tui.core.doctor import diagnose, exit_code, render_json, render_text

    remote = remote_from_args(args)
    if remote is not None:  # the server host's doctor, on its [server] settings
        import json
        import sys

        from tui.core.serve.remote_source import RemoteError

        try:
            answer = remote.doctor()
        except RemoteError as exc:
            print(f"ctxbudget doctor: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(answer["results"], indent=2, ensure_ascii=False) if args.json else answer["text"])
        return 1 if any(r["status"] == "fail" for r in answer["results"]) else 0
    facts, results = asyncio.run(
        diagnose(
            settings, server_url=args.server, model=args.model, ctx_size=args.ctx_size, parallel=args.parallel
        )
    )
    print(render_json(results) if args.json else render_text(results, facts))
    return exit_code(results)
