"""`ctxbudget mcp list|on NAME|off NAME`: switch MCP servers' tool schemas out of forwarded requests."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from tui.commands.connect_opts import add_connect_options, remote_from_args
from tui.core.config import Settings
from tui.core.terminal_text import printable

if TYPE_CHECKING:
    from tui.core.actions.mcp_switch import McpSwitchStore
    from tui.core.control.client import ControlClient
    from tui.core.records import RequestRecord


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `mcp` command."""
    parser = subparsers.add_parser(
        "mcp",
        help="list MCP servers and switch their tool schemas off or on",
        description="Switched-off MCP servers have their tool schemas removed from requests by the proxy "
        "(the agent keeps running; calls to those tools fail until switched on again). Switching costs one "
        "re-processing of the prompt from the first tool of that server on.",
    )
    parser.add_argument("action", choices=("list", "on", "off"))
    parser.add_argument("name", nargs="?", help="MCP server name (for on/off)")
    parser.add_argument(
        "--user",
        metavar="NAME",
        help="team server: this user's switches only (a [team] users name, or unknown); default: single user",
    )
    parser.add_argument("--json", action="store_true", help="print the list as JSON")
    add_connect_options(parser)
    parser.set_defaults(func=run_mcp)


def _latest_record(settings: Settings) -> RequestRecord | None:
    try:
        from tui.core.journal.reader import JournalReader

        rows = JournalReader(settings.journal_path()).latest(20)
    except Exception:  # a missing or locked journal only means no per-server figures
        return None
    for row in reversed(rows):
        if row.anatomy is not None and row.anatomy.mcp_servers:
            return row
    return rows[-1] if rows else None


def server_rows(settings: Settings, store: McpSwitchStore) -> list[dict[str, Any]]:
    """Known servers (config, last request, state file) with on/off and their last-request cost."""
    from tui.core.anatomy.model import MCP_HELPERS_SERVER

    off = store.off()
    record = _latest_record(settings)
    seen: dict[str, dict[str, int]] = {}
    if record is not None and record.anatomy is not None:
        seen = {k: v for k, v in record.anatomy.mcp_servers.items() if k != MCP_HELPERS_SERVER}
    names = list(dict.fromkeys([*settings.anatomy.mcp_servers, *seen, *sorted(off)]))
    return [
        {
            "server": name,
            "state": "off" if name in off else "on",
            "tools": seen.get(name, {}).get("tools"),
            "tokens": seen.get(name, {}).get("tokens"),
        }
        for name in names
    ]


def _run_live(args: argparse.Namespace, client: ControlClient) -> int:
    """The same actions through the running proxy's control API (switches answer with the cost)."""
    from tui.core.control.client import ControlError

    user = args.user or None
    try:
        if args.action == "list":
            mcp = client.state(user)["mcp"]
            if args.json:
                print(json.dumps({"source": f"proxy at {client.base_url}", **mcp}, indent=2))
                return 0
            print(f"proxy at {client.base_url} (switch file {mcp['state_file']})")
            for row in mcp["servers"]:
                cost = (
                    f"{row['tokens']} tokens in {row['tools']} tools"
                    if row["tokens"] is not None
                    else "not seen"
                )
                print(printable(f"{'on' if row['enabled'] else 'off':>3}  {row['server']:<24} {cost}"))
            off = {row["server"] for row in mcp["servers"] if not row["enabled"]}
            for cand in (c for c in mcp["never_called"] if c["server"] not in off):
                print(
                    printable(
                        f"never called this session: {cand['server']} ({cand['tokens']} tokens): "
                        f"`ctxbudget mcp off {cand['server']}`"
                    )
                )
            return 0
        answer = client.set_mcp(args.name, args.action == "on", user)
    except (ControlError, KeyError) as exc:
        print(f"ctxbudget mcp: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    whose = f" for user {user}" if user else ""
    print(
        printable(
            f"{args.name}: {args.action}{whose} in the running proxy; "
            f"switched off now: {', '.join(answer['off']) or 'none'}"
        )
    )
    estimate: dict[str, Any] | None = answer.get("cost")
    if estimate:
        print(f"the next request {estimate['text']} ({estimate['counter']} tokens)")
    return 0


def run_mcp(args: argparse.Namespace, settings: Settings) -> int:
    """List servers, or switch one on/off: through the running proxy, else in the state file it reads."""
    from tui.core.actions.mcp_switch import McpSwitchStore, default_state_path
    from tui.core.config import UNKNOWN_USER
    from tui.core.control.client import ControlClient
    from tui.core.team.state_paths import user_state_path

    if args.action != "list" and not args.name:
        print(f"ctxbudget mcp {args.action}: name the MCP server (see `ctxbudget mcp list`)")
        return 2
    user = args.user or ""
    remote = remote_from_args(args)
    # A remote server knows its own users (it answers 404 for others); locally the config says.
    if remote is None and user and user != UNKNOWN_USER and user not in settings.team.users:
        names = ", ".join(sorted(settings.team.users)) or "none (see `ctxbudget team add`)"
        print(f"ctxbudget mcp: --user {user!r} is not in [team] users; users: {names}", file=sys.stderr)
        return 2
    client = ControlClient.from_settings(settings) if remote is None else remote.control_client()
    if remote is not None or client.reachable():  # remote: no local switch file to fall back on
        return _run_live(args, client)
    store = McpSwitchStore(user_state_path(default_state_path(), user))
    if args.action == "list":
        rows = server_rows(settings, store)
        if args.json:
            print(json.dumps({"state_file": str(store.path), "servers": rows}, indent=2))
            return 0
        if not rows:
            print("no MCP servers known yet: set [anatomy] mcp_servers or send a request through the proxy")
            return 0
        for row in rows:
            cost = (
                f"{row['tokens']} tokens in {row['tools']} tools" if row["tokens"] is not None else "not seen"
            )
            print(printable(f"{row['state']:>3}  {row['server']:<24} {cost}"))
        return 0
    if not args.name:
        print(f"ctxbudget mcp {args.action}: name the MCP server (see `ctxbudget mcp list`)")
        return 2
    off = store.set_enabled(args.name, args.action == "on")
    print(f"{args.name}: {args.action}; switched off now: {', '.join(sorted(off)) or 'none'}")
    print(
        "the proxy applies this to the next request "
        "(the server re-processes the prompt from that server's tools on)"
    )
    return 0
