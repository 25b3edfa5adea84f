"""Run serve: the live sources into the hub, the HTTP app on its address, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import ssl
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from tui.core.config import ConfigError, Settings
from tui.core.feed.live import LiveDriver
from tui.core.feed.updates import FeedUpdate, SourceStatus
from tui.core.proxy.address import ListenAddress
from tui.core.serve.app import ServeApp, ServeOptions
from tui.core.serve.hub import EventHub
from tui.core.terminal_text import printable

SHUTDOWN_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ServeConfig:
    """What `ctxbudget serve` was asked to do."""

    listen: ListenAddress
    token: str
    proxy: bool
    tls_cert: Path | None = None
    tls_key: Path | None = None


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server TLS context from PEM files (errors name the file)."""
    for path, option in ((cert, "--tls-cert"), (key, "--tls-key")):
        if not path.is_file():
            raise ConfigError(f"{option} {path}: no such file (a PEM certificate chain / private key)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"--tls-cert {cert} / --tls-key {key}: cannot load them ({exc})") from None
    return context


def status_printer() -> Callable[[FeedUpdate], None]:
    """A feed listener printing each source's state when it changes (proxy address, log, journal trouble)."""
    shown: dict[str, str] = {}

    def show(update: FeedUpdate) -> None:
        if not isinstance(update, SourceStatus) or shown.get(update.source) == update.message:
            return
        shown[update.source] = update.message
        print(f"ctxbudget serve: {update.source} {update.health}: {printable(update.message)}", flush=True)

    return show


async def serve(settings: Settings, config: ServeConfig) -> int:
    """Run until a signal; 0 on a clean stop."""
    driver = LiveDriver(settings, attach=not config.proxy, journal_path=settings.journal_path())
    hub = EventHub(driver, log_lines=settings.dashboard.log_lines)
    options = ServeOptions(
        listen_host=config.listen.host, token=config.token, token_required=not config.listen.is_loopback
    )
    app = ServeApp(settings, driver, hub, options).build()
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None)
    await runner.setup()
    context = tls_context(config.tls_cert, config.tls_key) if config.tls_cert and config.tls_key else None
    site = web.TCPSite(runner, config.listen.host, config.listen.port, ssl_context=context)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(
            f"ctxbudget serve: cannot listen on {config.listen.host}:{config.listen.port}: {exc.strerror}; "
            "pick another with --listen HOST:PORT",
            file=sys.stderr,
        )
        return 1
    server = site._server
    sockets = getattr(server, "sockets", None) or ()
    port = sockets[0].getsockname()[1] if sockets else config.listen.port
    scheme = "https" if context else "http"
    host = f"[{config.listen.host}]" if ":" in config.listen.host else config.listen.host
    auth = "token required" if options.token_required else "loopback: token optional"
    print(f"ctxbudget serve: listening on {scheme}://{host}:{port} ({auth}; epoch {hub.epoch})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    hub.subscribe(status_printer())
    feed = asyncio.create_task(hub.run(), name="serve-feed")
    stopper = asyncio.create_task(stop.wait(), name="serve-stop")
    try:
        await asyncio.wait({feed, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        await runner.cleanup()
        feed.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feed
    return 0
