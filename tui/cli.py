"""The `ctxbudget` command line: parses arguments and hands off to one command module."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tui import __version__
from tui.core.config import ConfigError, Settings, load_settings

# Each module defines `register(subparsers)`; a subcommand sets `func(args, settings) -> int`.
# build_parser() imports them all, so they import only what register() needs at module level and the
# rest inside the command functions (tests/test_cli_imports.py keeps heavy libraries out of startup).
COMMAND_MODULES: tuple[str, ...] = (
    "tui.commands.dashboard_cmd",
    "tui.commands.proxy_cmd",
    "tui.commands.inspect_cmd",
    "tui.commands.requests_cmd",
    "tui.commands.env_cmd",
    "tui.commands.parse_log_cmd",
    "tui.commands.doctor_cmd",
    "tui.commands.server_cmd",
    "tui.commands.mcp_cmd",
    "tui.commands.compact_cmd",
    "tui.commands.transforms_cmd",
    "tui.commands.report_cmd",
    "tui.commands.findings_cmd",
    "tui.commands.statusline_cmd",
    "tui.commands.serve_cmd",
    "tui.commands.team_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="ctxbudget",
        description="Where every token of your coding agent's context goes, against a local llama-server.",
        epilog="Run `ctxbudget` with no command to open the dashboard (it starts the proxy too).",
    )
    parser.add_argument("--version", action="version", version=f"ctxbudget {__version__}")
    parser.add_argument(
        "--config", metavar="PATH", help="config file (default: $CTXBUDGET_CONFIG, ./config.toml, user dir)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(name)
        module.register(sub, parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings: Settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"ctxbudget: config error: {exc}", file=sys.stderr)
        return 2
    func = getattr(args, "func", None)
    if func is None:
        func = parser.get_default("dashboard_func")
    try:
        return int(func(args, settings))
    except ConfigError as exc:
        print(f"ctxbudget: config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
