"""`ctxbudget compact`: compact the agent's context, by typing /compact in its tmux pane or via the proxy."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tui.core.config import Settings
from tui.core.control.client import CONTROL_PREFIX
from tui.core.terminal_text import printable

CONTROL_PATH = CONTROL_PREFIX + "compact"
DEFAULT_KEEP_TURNS = 2


def _compact_opt(settings: Settings, name: str, default: Any) -> Any:
    """A [compact] option that the config may not define yet."""
    return getattr(getattr(settings, "compact", None), name, default)


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `compact` command."""
    parser = subparsers.add_parser(
        "compact",
        help="compact the agent's context (tmux pane: /compact; proxy: summarise older turns)",
        description="Pane mode types /compact + Enter into the agent's tmux pane. Proxy mode asks the "
        "running proxy to summarise all but the last N turns with the model itself and to send that "
        "summary in place of those turns on every later request of the session (--undo switches it off).",
    )
    parser.add_argument("--mode", choices=("proxy", "pane"), help="default: [compact] mode (pane)")
    parser.add_argument(
        "--session", metavar="ID", help="proxy mode: session id (default: the latest session)"
    )
    parser.add_argument(
        "--keep-turns", type=int, metavar="N", help="proxy mode: recent user turns kept verbatim"
    )
    parser.add_argument(
        "--focus",
        metavar="TEXT",
        default="",
        help="what the summary should keep in view (pane: /compact TEXT; proxy: the summary prompt)",
    )
    parser.add_argument("--pane", metavar="TARGET", help="pane mode: tmux pane (%%3 or session:window.pane)")
    parser.add_argument("--socket", metavar="NAME", help="pane mode: tmux socket name (tmux -L NAME)")
    parser.add_argument(
        "--undo", action="store_true", help="drop the session's proxy compaction (implies --mode proxy)"
    )
    parser.add_argument(
        "--user", metavar="NAME", help="proxy mode, team server: compact this user's session ([team] users)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run_compact)


def request_proxy_compaction(
    settings: Settings,
    session: str | None,
    keep_turns: int,
    undo: bool = False,
    timeout: float = 600.0,
    user: str | None = None,
    focus: str = "",
) -> dict[str, Any]:
    """POST the compaction (or its undo) to the running proxy's control API; RuntimeError when it fails."""
    from tui.core.control.client import ControlClient, ControlError

    client = ControlClient.from_settings(settings, timeout)
    try:
        if undo:
            return client.undo_compaction(session, user)
        return client.compact(session, keep_turns, timeout, user, focus=focus)
    except ControlError as exc:
        hint = "" if exc.status else "; start it with `ctxbudget` or `ctxbudget proxy`, or use --mode pane"
        raise RuntimeError(f"proxy compaction failed: {exc}{hint}") from exc
    finally:
        client.close()


def run_compact(args: argparse.Namespace, settings: Settings) -> int:
    """Compact in the chosen mode; 0 on success, 1 on failure."""
    # Only a proxy compaction can be undone, so --undo alone means proxy mode whatever [compact] mode says.
    mode = args.mode or ("proxy" if args.undo else _compact_opt(settings, "mode", "pane"))
    if mode == "pane":
        from tui.core.actions.tmux_compact import DEFAULT_AGENT, PaneError, compact_command, send_compact

        if args.undo:
            print("ctxbudget compact: --undo only applies to proxy mode (drop --mode pane)", file=sys.stderr)
            return 2
        spec = args.pane or _compact_opt(settings, "pane", "")
        agent = _compact_opt(settings, "agent_command", DEFAULT_AGENT) or DEFAULT_AGENT
        socket = args.socket or _compact_opt(settings, "tmux_socket", "") or None
        try:
            command = compact_command(getattr(args, "focus", "") or "")
            pane = send_compact(spec, agent=agent, socket_name=socket, command=command)
        except PaneError as exc:
            print(f"ctxbudget compact: {exc}", file=sys.stderr)
            return 1
        result: dict[str, Any] = {"mode": "pane", "pane": pane.pane_id, "target": pane.target}
        result["command"] = command
        print(json.dumps(result) if args.json else printable(f"sent {command} to pane {pane.describe()}"))
        return 0
    keep = (
        args.keep_turns
        if args.keep_turns is not None
        else _compact_opt(settings, "keep_turns", DEFAULT_KEEP_TURNS)
    )
    try:
        focus = getattr(args, "focus", "") or ""
        data = request_proxy_compaction(
            settings, args.session, int(keep), undo=args.undo, user=args.user, focus=focus
        )
    except RuntimeError as exc:
        print(f"ctxbudget compact: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
    elif args.undo:
        print(printable(f"compaction of session {data.get('session_id', args.session or 'latest')} undone"))
    else:
        from tui.core.actions.compaction import SUMMARY_CUT_NOTE

        print(
            printable(
                f"session {data.get('session_id', '?')}: {data.get('prefix_tokens', '?')} tokens of older "
                f"turns replaced by a {data.get('summary_tokens', '?')}-token summary "
                f"(saves {data.get('tokens_saved', '?')} per request, {data.get('counter', '')})"
                + (f"; {SUMMARY_CUT_NOTE}" if data.get("summary_cut") else "")
            )
        )
    return 0
