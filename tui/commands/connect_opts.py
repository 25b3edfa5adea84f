"""`--connect URL` for CLI commands: read from a remote `ctxbudget serve` instead of this machine."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tui.core.config import ConfigError, Settings

if TYPE_CHECKING:
    from tui.core.serve.remote_source import RemoteSource

TOKEN_ENV = "CTXBUDGET_TOKEN"
CA_ENV = "CTXBUDGET_TLS_CA"


def add_connect_options(parser: argparse.ArgumentParser) -> None:
    """--connect, --token-file and --tls-ca."""
    group = parser.add_argument_group("remote (a `ctxbudget serve` on the GPU box)")
    group.add_argument(
        "--connect",
        metavar="URL",
        help="ask the `ctxbudget serve` at URL (token: $CTXBUDGET_TOKEN or --token-file)",
    )
    group.add_argument("--token-file", metavar="PATH", help="file holding serve's token (--show-token)")
    group.add_argument(
        "--tls-ca", metavar="PATH", help="CA certificate to verify serve's TLS (or $CTXBUDGET_TLS_CA)"
    )


def read_token(args: argparse.Namespace) -> str:
    """The token from --token-file, else $CTXBUDGET_TOKEN, else "" (a loopback serve needs none)."""
    path_text = getattr(args, "token_file", None)
    if path_text:
        path = Path(path_text).expanduser()
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"--token-file {path}: cannot read it ({exc.strerror})") from None
        if not token:
            raise ConfigError(f"--token-file {path}: the file is empty (copy `ctxbudget serve --show-token`)")
        return token
    return os.environ.get(TOKEN_ENV, "").strip()


def remote_from_args(args: argparse.Namespace) -> RemoteSource | None:
    """The remote serve named by --connect, or None to use this machine."""
    url = getattr(args, "connect", None)
    if not url:
        return None
    from tui.core.serve.remote_source import RemoteSource

    ca_text = getattr(args, "tls_ca", None) or os.environ.get(CA_ENV, "")
    ca = Path(ca_text).expanduser() if ca_text else None
    if ca is not None and not ca.is_file():
        raise ConfigError(
            f"--tls-ca {ca}: no such file (the PEM certificate serve's --tls-cert was signed by)"
        )
    return RemoteSource(url, read_token(args), ca)


def local_journal(args: argparse.Namespace, settings: Settings, command: str) -> Path | None:
    """This machine's journal (--journal or [journal] path), or None after a one-line error on stderr."""
    import sys

    from tui.core.journal.reader import JournalUnreadable, check_readable

    journal = getattr(args, "journal", None)
    path = Path(journal).expanduser() if journal else settings.journal_path()
    if not path.exists():
        print(f"ctxbudget {command}: no journal at {path} (run `ctxbudget proxy` first)", file=sys.stderr)
        return None
    try:
        check_readable(path)
    except JournalUnreadable as exc:
        print(f"ctxbudget {command}: {exc}", file=sys.stderr)
        return None
    return path
