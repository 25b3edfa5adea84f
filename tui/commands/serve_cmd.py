"""`ctxbudget serve`: this machine's feed, journal and server control for `--connect` clients elsewhere."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tui.core.config import ConfigError, Settings, with_overrides

DEFAULT_LISTEN = "127.0.0.1:8788"


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `serve` subcommand."""
    parser = subparsers.add_parser(
        "serve",
        help="serve this machine's dashboard feed, journal and server control to `--connect` clients",
        description="Runs on the machine with llama-server: follows its log, polls it and the GPU, follows "
        "the journal, runs server control and (with --proxy) the proxy, and serves all of it over one HTTP "
        "API (docs/remote-api.md). Beyond loopback it needs its token (`--show-token`) and TLS "
        "(--tls-cert/--tls-key) unless --insecure-http.",
    )
    parser.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help="config file")
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help=f"serve address (default: [serve] listen, {DEFAULT_LISTEN})",
    )
    parser.add_argument(
        "--proxy",
        action="store_true",
        default=None,
        help="also run the proxy, so agents elsewhere can point at it (default: [serve] proxy)",
    )
    parser.add_argument(
        "--proxy-listen",
        metavar="HOST:PORT",
        help="the proxy's address with --proxy (default: [proxy] listen)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        default=None,
        help="let the proxy listen beyond loopback (as `ctxbudget proxy --allow-remote`)",
    )
    parser.add_argument(
        "--show-token", action="store_true", help="print the token (made on first use) and exit"
    )
    parser.add_argument(
        "--tls-cert", metavar="PATH", help="PEM certificate chain: serve HTTPS (default: [serve] tls_cert)"
    )
    parser.add_argument(
        "--tls-key", metavar="PATH", help="PEM private key of --tls-cert (default: [serve] tls_key)"
    )
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        default=None,
        help="allow plain HTTP beyond loopback (the token and prompts travel unencrypted; prefer TLS or an "
        "SSH tunnel to a loopback serve; default: [serve] insecure_http)",
    )
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Handler for `ctxbudget serve`."""
    from tui.core.proxy.address import parse_listen
    from tui.core.serve.auth import load_or_create_token, token_path

    token = load_or_create_token()
    if args.show_token:
        print(token)
        print(f"# stored in {token_path()} (mode 0600)", file=sys.stderr)
        return 0
    serve_settings = settings.serve
    listen_text = args.listen or serve_settings.listen
    tls_cert = args.tls_cert if args.tls_cert is not None else serve_settings.tls_cert
    tls_key = args.tls_key if args.tls_key is not None else serve_settings.tls_key
    insecure = args.insecure_http if args.insecure_http is not None else serve_settings.insecure_http
    run_proxy = args.proxy if args.proxy is not None else serve_settings.proxy
    listen = parse_listen(listen_text, allow_remote=True)
    for value, flag, key in ((tls_cert, "--tls-cert", "tls_cert"), (tls_key, "--tls-key", "tls_key")):
        # Checked here, not when the config loads: other commands on other machines share the file.
        if value and not Path(value).expanduser().is_file():
            given = flag if getattr(args, key) is not None else f"[serve] {key} in {settings.source}"
            raise ConfigError(f"{given}: {value!r} is not a file; give the path of a PEM file")
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError(
            "--tls-cert and --tls-key ([serve] tls_cert and tls_key) go together: give both PEM files, "
            "or neither"
        )
    if not listen.is_loopback and not tls_cert and not insecure:
        raise ConfigError(
            f"serve would listen on {listen_text}, beyond loopback: give --tls-cert PATH --tls-key PATH "
            "(or [serve] tls_cert and tls_key), or --insecure-http ([serve] insecure_http = true) to send "
            "the token and prompts unencrypted; or keep serve on loopback and reach it through an SSH tunnel"
        )
    if not listen.is_loopback and not tls_cert:
        print(
            "ctxbudget serve: warning: plain HTTP beyond loopback (--insecure-http): the token and prompts "
            "cross the network unencrypted",
            file=sys.stderr,
        )
    settings = with_overrides(settings, "proxy", listen=args.proxy_listen, allow_remote=args.allow_remote)
    if run_proxy:
        parse_listen(settings.proxy.listen, allow_remote=settings.proxy.allow_remote)  # refused early
    import asyncio

    from tui.core.serve.runner import ServeConfig, serve

    config = ServeConfig(
        listen=listen,
        token=token,
        proxy=bool(run_proxy),
        tls_cert=Path(tls_cert).expanduser() if tls_cert else None,
        tls_key=Path(tls_key).expanduser() if tls_key else None,
    )
    return asyncio.run(serve(settings, config))
