"""`ctxbudget team add|list|remove`: user keys for a shared proxy (only their hashes are stored)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tui.core.config import Settings


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `team` command."""
    parser = subparsers.add_parser(
        "team",
        help="add, list or remove the users of a shared (team) proxy",
        description="Each user's agent sends its own key; the proxy journals the user's name, keeps MCP "
        "switches and compactions per user, and sends the upstream [server] api_key instead. `add` prints "
        "a new key once and stores only its SHA-256 hash in team.toml (0600) in the config dir.",
    )
    parser.add_argument("action", choices=("add", "list", "remove"))
    parser.add_argument("name", nargs="?", help="user name (letters, digits, - and _)")
    parser.set_defaults(func=run_team)


def run_team(args: argparse.Namespace, settings: Settings) -> int:
    """Add (prints the key once), list (names only) or remove a user; 2 for a bad name or usage."""
    from tui.core.config import UNKNOWN_USER, USER_NAME, ConfigError, team_file_path
    from tui.core.team.keys import hash_key, new_key
    from tui.core.team.team_file import add_user, remove_user

    if args.action == "list":
        for name in sorted(settings.team.users):
            print(name)
        if not settings.team.users:
            print("no team users: `ctxbudget team add NAME` creates one", file=sys.stderr)
        return 0
    name = args.name or ""
    if not USER_NAME.match(name) or name == UNKNOWN_USER:
        print(
            f"ctxbudget team {args.action}: give a user name of letters, digits, - and _ (at most 64, "
            f"not {UNKNOWN_USER!r}), e.g. `ctxbudget team {args.action} alice`",
            file=sys.stderr,
        )
        return 2
    path = team_file_path()
    if args.action == "remove":
        if remove_user(name, path):
            print(f"removed {name} from {path}; their key stops working within a second")
            return 0
        where = f" (it is in {settings.source}: remove it there)" if name in settings.team.users else ""
        print(f"ctxbudget team remove: no user {name!r} in {path}{where}", file=sys.stderr)
        return 1
    if name in settings.team.users:
        print(
            f"ctxbudget team add: user {name!r} already exists; `ctxbudget team remove {name}` first",
            file=sys.stderr,
        )
        return 1
    key = new_key()
    try:
        add_user(name, hash_key(key), path)
    except ConfigError as exc:
        print(f"ctxbudget team add: {exc}", file=sys.stderr)
        return 1
    # The one place a key reaches the terminal: the user asked for it, and it is never stored.
    print(
        f"added {name} (its key's hash is in {path}). The key is shown only this once; "
        f"give it to {name} for their agent's API key:",
        file=sys.stderr,
    )
    print(key)
    return 0
