"""`ctxbudget server start|stop|restart|status`: control the configured llama-server."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tui.commands.connect_opts import add_connect_options, remote_from_args
from tui.core.config import Settings

if TYPE_CHECKING:
    from tui.core.actions.server_control import ServerState


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `server` command."""
    parser = subparsers.add_parser(
        "server",
        help="start, stop or restart llama-server from the [server] settings",
        description="Start, stop, restart or show the llama-server configured in [server]. Restart stops "
        "what runs on the port (also a server not started by ctxbudget, when its process can be found) "
        "and waits until the model is loaded; it keeps the slots' prompt cache across the restart when "
        "it can (see --keep-cache).",
    )
    parser.add_argument("action", choices=("start", "stop", "restart", "status", "load", "unload"))
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="router mode (--models-dir / --models-preset): load, unload or restart this one model",
    )
    parser.add_argument("--ctx-size", type=int, metavar="N", help="override [server] ctx_size for this start")
    parser.add_argument("--parallel", type=int, metavar="N", help="override [server] parallel for this start")
    parser.add_argument(
        "--force", action="store_true", help="start even when the doctor finds a blocking problem"
    )
    parser.add_argument(
        "--keep-cache",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="restart: save the slots' prompt cache and restore it into the new server (default: when it "
        "can work, else say why and restart without it; --keep-cache refuses the restart instead; "
        "--no-keep-cache drops the cache)",
    )
    parser.add_argument(
        "--await-reuse",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="restart: after restoring the cache, wait up to SECONDS for the next request and say how many "
        "of its prompt tokens came from the cache",
    )
    parser.add_argument("--json", action="store_true", help="print the final state as JSON")
    add_connect_options(parser)
    parser.set_defaults(func=run_server)


def _printer(quiet: bool) -> Any:
    def show(state: ServerState) -> None:
        if not quiet:
            print(f"[{state.phase}] {state.message}", file=sys.stderr, flush=True)

    return show


def run_model_action(args: argparse.Namespace, model: str | None, settings: Settings) -> int:
    """Load, unload or restart one model of a router, here or on the serve host (--connect).

    Exit 0 when the model settled as asked, 1 when not (or the router refused), 2 without --model.
    """
    from tui.core.actions.router_control import ModelAction, RouterControl, RouterControlError

    action = args.action
    if not model:
        print(f"ctxbudget server {action}: name the model with --model NAME (router mode)", file=sys.stderr)
        return 2
    act: Callable[[str, str], ModelAction]
    if getattr(args, "connect", None):
        from tui.core.remote.server_control import RemoteServerControl

        remote = remote_from_args(args)
        assert remote is not None
        act = RemoteServerControl(remote, remote.url).model_action
    else:
        control = RouterControl(settings.server.url, settings.server.api_key)
        act = lambda what, name: getattr(control, what)(name)  # noqa: E731 - same shape as the remote one
    try:
        result = act(action, model)
    except RouterControlError as exc:
        print(f"ctxbudget server {action}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_json(), indent=2) if args.json else result.describe())
    return 0 if result.ok else 1


def run_server(args: argparse.Namespace, settings: Settings) -> int:
    """Run one server action; exit 0 on success, 1 when it failed, 2 when it was refused."""
    from tui.core.actions.server_control import PreflightError, ServerController
    from tui.core.actions.server_errors import ServerControlError

    model = getattr(args, "model", None)
    per_model = args.action in ("load", "unload") or (args.action == "restart" and bool(model))
    if per_model:
        return run_model_action(args, model, settings)
    if getattr(args, "connect", None):
        return run_remote(args)
    controller = ServerController(settings, on_state=_printer(bool(args.json)))
    if args.action == "status":
        status = controller.status()
        print(json.dumps(status.to_json(), indent=2) if args.json else status.describe())
        return 0 if status.phase == "up" else 1
    try:
        if args.action == "stop":
            state = controller.stop()
        elif args.action == "start":
            state = controller.start(args.ctx_size, args.parallel, args.force)
        else:
            keep = getattr(args, "keep_cache", None)
            state = controller.restart(args.ctx_size, args.parallel, args.force, keep_cache=keep)
            wait = float(getattr(args, "await_reuse", 0.0) or 0.0)
            if wait > 0 and state.phase == "up":
                state = controller.await_reuse(wait) or state
    except PreflightError as exc:
        print(f"ctxbudget server {args.action}: {exc}", file=sys.stderr)
        return 2
    except ServerControlError as exc:
        print(f"ctxbudget server {args.action}: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(state.to_json(), indent=2))
    else:
        for line in state.error_lines:
            print(f"  {line}", file=sys.stderr)
    return 1 if state.phase == "failed" else 0


def run_remote(args: argparse.Namespace) -> int:
    """The same action on the server host, through its `ctxbudget serve` (same exit codes)."""
    from tui.core.actions.server_probe import ServerStatus
    from tui.core.remote.server_control import models_from_json
    from tui.core.serve.remote_source import RemoteError

    remote = remote_from_args(args)
    assert remote is not None
    try:
        if args.action == "status":
            data = remote.server_status()
            if args.json:
                print(json.dumps(data, indent=2))
            else:
                fields = {k: v for k, v in data.items() if k in ServerStatus.__dataclass_fields__}
                fields["foreign_pids"] = tuple(fields.get("foreign_pids") or ())
                fields["record"] = None
                fields["models"] = models_from_json(data.get("models"))
                print(f"{remote.url}: {ServerStatus(**fields).describe()}")
            return 0 if data.get("phase") == "up" else 1

        def show(step: dict[str, Any]) -> None:
            if not args.json and "phase" in step:
                print(f"[{step['phase']}] {step['message']}", file=sys.stderr, flush=True)

        payload = {
            "ctx_size": args.ctx_size,
            "parallel": args.parallel,
            "force": bool(args.force),
            "keep_cache": getattr(args, "keep_cache", None),
        }
        last = remote.server_action(args.action, payload, show)
    except RemoteError as exc:
        print(f"ctxbudget server {args.action}: {exc}", file=sys.stderr)
        return 1
    if "refused" in last:
        print(f"ctxbudget server {args.action}: {last['refused']}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(last, indent=2))
    else:
        for line in last.get("error_lines") or []:
            print(f"  {line}", file=sys.stderr)
    return 1 if last.get("phase") == "failed" or not last else 0
