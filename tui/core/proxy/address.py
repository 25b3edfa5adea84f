"""Parsing the proxy's listen address and refusing non-loopback ones unless allowed."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from tui.core.config import ConfigError
from tui.core.settings_checks import host_kind, split_host_port


class RemoteListenError(ConfigError):
    """The listen address is not loopback and remote listening was not allowed."""


@dataclass(frozen=True)
class ListenAddress:
    """A host and port to bind."""

    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        """True for 127.0.0.0/8, ::1 and localhost."""
        return host_is_loopback(self.host)

    def url(self) -> str:
        """The base URL a client would use."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def host_is_loopback(host: str) -> bool:
    """Whether binding this host keeps the proxy reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_listen(text: str, *, allow_remote: bool = False) -> ListenAddress:
    """Parse "HOST:PORT", "[V6]:PORT" or ":PORT" (loopback); refuse remote hosts unless allowed."""
    text = text.strip()
    host, sep, port_text = split_host_port(text)
    if not sep:
        raise ConfigError(f"listen address {text!r}: expected HOST:PORT such as 127.0.0.1:3000")
    host = host or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"listen address {text!r}: port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"listen address {text!r}: port must be 0-65535")
    if host_kind(host) is None:
        raise ConfigError(f"listen address {text!r}: {host!r} is not an IP address or host name")
    address = ListenAddress(host, port)
    if not address.is_loopback and not allow_remote:
        raise RemoteListenError(
            f"listen address {text!r} is not loopback: the proxy forwards your API key and prompts; "
            "pass --allow-remote (or set [proxy] allow_remote = true) to listen on it anyway"
        )
    return address
