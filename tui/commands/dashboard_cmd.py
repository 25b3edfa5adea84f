"""`ctxbudget` (no command) opens the dashboard; `ctxbudget demo` replays a recorded session in it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tui.core.config import ConfigError, Settings, with_overrides


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Root options for the dashboard, the `demo` subcommand, and the no-command default."""
    group = root_parser.add_argument_group("dashboard (when no command is given)")
    group.add_argument(
        "--attach",
        action="store_true",
        help="watch the journal of a proxy running elsewhere (`ctxbudget proxy`) instead of starting one",
    )
    group.add_argument(
        "--journal", dest="root_journal", metavar="PATH", help="journal file to write or watch"
    )
    group.add_argument("--listen", dest="root_listen", metavar="HOST:PORT", help="proxy listen address")
    group.add_argument(
        "--upstream", dest="root_upstream", metavar="URL", help="llama-server URL the proxy forwards to"
    )
    group.add_argument(
        "--connect",
        dest="root_connect",
        metavar="URL",
        help="show the dashboard of a `ctxbudget serve` on another machine (token: CTXBUDGET_TOKEN)",
    )
    group.add_argument(
        "--token-file",
        dest="root_token_file",
        metavar="PATH",
        help="with --connect: read the serve token from this file instead of CTXBUDGET_TOKEN",
    )
    group.add_argument(
        "--tls-ca",
        dest="root_tls_ca",
        metavar="PATH",
        help="with --connect: CA certificate that signed serve's --tls-cert (default: CTXBUDGET_TLS_CA, "
        "else the system store)",
    )
    root_parser.set_defaults(dashboard_func=run_dashboard)

    demo = subparsers.add_parser(
        "demo",
        help="show the dashboard replaying a recorded session (no GPU or model needed)",
        description=(
            "Replays a session recorded through the proxy against a real llama-server (journal rows, "
            "server log, poller snapshots) through the same pipeline as the live dashboard."
        ),
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=None,
        metavar="X",
        help="replay speed: 1 = real time, 4 = four times faster (default: dashboard.demo_speed)",
    )
    demo.add_argument(
        "--recording", metavar="PATH", help="another recording (scripts/record_demo.py makes one)"
    )
    demo.add_argument(
        "--once", action="store_true", help="stop at the end of the recording instead of looping"
    )
    demo.set_defaults(func=run_demo)


def dashboard_settings(args: argparse.Namespace, settings: Settings) -> Settings:
    """Settings with the root options applied."""
    settings = with_overrides(
        settings,
        "proxy",
        listen=args.root_listen,
        upstream=args.root_upstream,
    )
    journal = args.root_journal
    if journal:
        settings = with_overrides(settings, "journal", path=str(Path(journal).expanduser()))
    return settings


def run_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    """Open the live dashboard (starting the embedded proxy unless --attach or --connect)."""
    if getattr(args, "root_connect", None):
        return run_remote_dashboard(args, settings)
    from tui.core.feed.feed import DashboardFeed
    from tui.core.feed.live import LiveDriver

    settings = dashboard_settings(args, settings)
    driver = LiveDriver(settings, attach=args.attach, journal_path=settings.journal_path())
    driver.prefetch_backlog()  # reads the newest rows while the UI below imports
    from tui.ui.app import make_app

    feed = DashboardFeed(driver, log_lines=settings.dashboard.log_lines)
    make_app(feed, settings).run()
    return 0


def run_remote_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    """The dashboard of a remote `ctxbudget serve`; a refused token stops here, a down host is retried."""
    if args.attach:
        raise ConfigError("--connect and --attach: pick one (--connect watches a remote serve)")
    from tui.commands.connect_opts import remote_from_args
    from tui.core.feed.feed import DashboardFeed
    from tui.core.remote.driver import RemoteDriver
    from tui.core.serve.remote_source import RemoteError, TokenRefused

    options = argparse.Namespace(
        connect=args.root_connect, token_file=args.root_token_file, tls_ca=args.root_tls_ca
    )
    source = remote_from_args(options)
    assert source is not None
    try:
        info: dict[str, Any] | None = source.info()
    except TokenRefused as exc:
        print(f"ctxbudget: {exc}", file=sys.stderr)
        return 2
    except RemoteError:
        info = None  # the driver says "disconnected, retrying" and connects once the host answers
    from tui.ui.app import make_app

    feed = DashboardFeed(RemoteDriver(source, info), log_lines=settings.dashboard.log_lines)
    make_app(feed, settings).run()
    return 0


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Open the dashboard on a recorded session."""
    from tui.core.feed.demo import DemoDriver
    from tui.core.feed.feed import DashboardFeed
    from tui.core.feed.recording import DEMO_RECORDING, load_recording
    from tui.ui.app import make_app

    speed = args.speed if args.speed is not None else settings.dashboard.demo_speed
    if speed < 0:
        raise ConfigError(
            f"--speed {speed}: give a positive factor (1 = real time) or 0 to show it all at once"
        )
    path = Path(args.recording).expanduser() if args.recording else DEMO_RECORDING
    if not path.is_file():
        raise ConfigError(f"{path}: recording not found (make one with scripts/record_demo.py)")
    driver = DemoDriver(load_recording(path), speed=speed, loop=not args.once)
    feed = DashboardFeed(driver, log_lines=settings.dashboard.log_lines)
    make_app(feed, settings).run()
    return 0
