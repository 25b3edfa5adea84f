"""`ctxbudget transforms list|on NAME|off NAME`: switch request transforms at runtime."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from tui.commands.connect_opts import add_connect_options, remote_from_args
from tui.core.config import Settings
from tui.core.transforms.registry import TRANSFORM_ORDER

if TYPE_CHECKING:
    from tui.core.control.transform_state import TransformSwitchStore


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `transforms` command."""
    parser = subparsers.add_parser(
        "transforms",
        help="list the request transforms and switch them on or off at runtime",
        description="Through the running proxy's control API when it answers at [proxy] listen (applies to "
        "the next request), else by editing the switch file the proxy reads at start. Switching a "
        "transform that changes the prompt's prefix costs one re-processing of the conversation.",
    )
    parser.add_argument("action", choices=("list", "on", "off"))
    parser.add_argument("name", nargs="?", choices=TRANSFORM_ORDER, help="transform (for on/off)")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_connect_options(parser)
    parser.set_defaults(func=run_transforms)


def _offline_rows(settings: Settings, store: TransformSwitchStore) -> list[dict[str, Any]]:
    enabled = store.enabled()
    return [
        {
            "name": n,
            "enabled": n in enabled,
            "configured": n in settings.transforms.enabled,
            "saved_tokens": None,
        }
        for n in TRANSFORM_ORDER
    ]


def _print_rows(rows: list[dict[str, Any]], where: str) -> None:
    print(where)
    for row in rows:
        saved = row.get("saved_tokens")
        extra = f"  saved {saved} tokens this run" if saved else ""
        config = "" if row["enabled"] == row["configured"] else "  (runtime override)"
        print(f"{'on' if row['enabled'] else 'off':>3}  {row['name']:<18}{config}{extra}")


def run_transforms(args: argparse.Namespace, settings: Settings) -> int:
    """List or switch transforms, live when the proxy runs; 0 on success."""
    from tui.core.control.client import ControlClient, ControlError
    from tui.core.control.transform_state import TransformSwitchStore

    remote = remote_from_args(args)
    client = ControlClient.from_settings(settings) if remote is None else remote.control_client()
    live = remote is not None or client.reachable()  # remote: no local switch file to fall back on
    store = TransformSwitchStore(settings.transforms.enabled)
    if args.action == "list":
        try:
            rows = client.state()["transforms"]["available"] if live else _offline_rows(settings, store)
        except (ControlError, KeyError) as exc:
            print(f"ctxbudget transforms: {exc}", file=sys.stderr)
            return 1
        where = f"proxy at {client.base_url}" if live else f"no proxy answers; switch file {store.path}"
        if args.json:
            print(json.dumps({"source": where, "transforms": rows}, indent=2))
        else:
            _print_rows(rows, where)
        return 0
    if not args.name:
        print(
            f"ctxbudget transforms {args.action}: name a transform ({', '.join(TRANSFORM_ORDER)})",
            file=sys.stderr,
        )
        return 2
    enabled = args.action == "on"
    if live:
        try:
            answer = client.set_transform(args.name, enabled)
        except ControlError as exc:
            print(f"ctxbudget transforms: {exc}", file=sys.stderr)
            return 1
        answer["via"] = "proxy"
    else:
        now = store.set_enabled(args.name, enabled)
        answer = {"name": args.name, "enabled": enabled, "enabled_now": list(now), "via": str(store.path)}
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    now_list = ", ".join(answer.get("enabled_now") or []) or "none"
    if answer["via"] == "proxy":
        print(f"{args.name}: {args.action} in the running proxy (enabled now: {now_list})")
        reprocess = answer.get("reprocess")
        if reprocess and reprocess.get("reprocesses"):
            print(f"the next request re-processes the prompt from {reprocess.get('where')} on (once)")
        elif reprocess is not None:
            print("the cached prefix of the latest conversation stays valid")
    else:
        print(
            f"{args.name}: {args.action} in {answer['via']} (no proxy answers at {client.base_url}; "
            f"a proxy reading this file applies it to its next request). Enabled: {now_list}"
        )
    return 0
