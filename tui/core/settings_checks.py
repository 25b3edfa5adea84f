"""Value checks for settings: one entry per (section, key), each saying what is wrong and the fix."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# A check gets the value and its whole section (for keys that depend on another one) and answers
# None when the value is fine, else one sentence: what is wrong; the fix.
Check = Callable[[Any, Any], "str | None"]

_HOST_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$", re.IGNORECASE)


def host_kind(host: str) -> str | None:
    """Classify a host as "loopback" or "remote"; None when it is neither an IP address nor a host name."""
    if host.lower() == "localhost":
        return "loopback"
    try:
        return "loopback" if ipaddress.ip_address(host).is_loopback else "remote"
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if not host or len(host) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        return None
    if all(label.isdigit() for label in labels):
        return None  # 256.1.1.1 is a bad IPv4 address, not a host name
    return "remote"


def split_host_port(text: str) -> tuple[str, str, str]:
    """HOST, the separator found ("" when none) and PORT of "HOST:PORT", "[V6]:PORT" or ":PORT"."""
    if text.startswith("["):
        return text[1:].partition("]:")
    return text.rpartition(":")


def listen_problem(text: str) -> str | None:
    """What is wrong with a HOST:PORT listen address (None when it parses; loopback is checked at start)."""
    text = text.strip()
    host, sep, port_text = split_host_port(text)
    if not sep:
        return f"{text!r} is not HOST:PORT; use e.g. \"127.0.0.1:3000\""
    host = host or "127.0.0.1"
    if not port_text.isdigit() or int(port_text) > 65535:
        return f"port {port_text!r} in {text!r} is not a number from 0 to 65535; use e.g. \"127.0.0.1:3000\""
    if host_kind(host) is None:
        return f"{host!r} in {text!r} is not an IP address or host name; use e.g. \"127.0.0.1:{port_text}\""
    return None


def url_problem(text: str) -> str | None:
    """What is wrong with an http(s) base URL (None when it can be used)."""
    example = 'use e.g. "http://127.0.0.1:8080"'
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError as exc:
        return f"{text!r} is not a valid URL ({exc}); {example}"
    if parts.scheme not in ("http", "https"):
        return f"{text!r} is not an http:// or https:// URL; {example}"
    if not parts.hostname or host_kind(parts.hostname.strip("[]")) is None:
        return f"{text!r} has no valid host; {example}"
    return None


def one_of(*choices: str) -> Check:
    """The value must be one of `choices`."""

    def check(value: Any, section: Any) -> str | None:
        if value in choices:
            return None
        return f"{value!r} is not one of {', '.join(repr(c) for c in choices)}; use one of those"

    return check


def at_least(low: float, meaning: str = "") -> Check:
    """The number must be >= low (`meaning` explains what the low end does)."""

    def check(value: Any, section: Any) -> str | None:
        if value >= low:
            return None
        return f"{value!r} is below {low:g}; use {low:g} or more{f' ({meaning})' if meaning else ''}"

    return check


def positive(value: Any, section: Any) -> str | None:
    """The number must be > 0."""
    return None if value > 0 else f"{value!r} must be greater than 0; use e.g. 2.0"


def port_number(value: Any, section: Any) -> str | None:
    """A TCP port, or 0."""
    return None if 0 <= value <= 65535 else f"{value!r} is not a port; use 0 to 65535 (0: the one in url)"


def _listen(value: Any, section: Any) -> str | None:
    # Whether a remote address is allowed is decided when the proxy starts: --allow-remote may come later.
    return listen_problem(value)


def _upstream(value: Any, section: Any) -> str | None:
    return url_problem(value)


def _otel_endpoint(value: Any, section: Any) -> str | None:
    if not value:
        return None  # export off
    problem = url_problem(value)
    return problem.replace("127.0.0.1:8080", "127.0.0.1:4318") if problem else None


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env_name(value: Any, section: Any) -> str | None:
    if not value or _ENV_NAME.match(value):
        return None
    return (
        f"{value!r} is not an environment variable name; give the variable's name (e.g. "
        '"CTXBUDGET_OTEL_HEADERS"), never the headers themselves: they hold secrets'
    )


def _nonempty(value: Any, section: Any) -> str | None:
    return None if value.strip() else 'must not be empty; use e.g. "ctxbudget"'


def journal_path_problem(value: Any, section: Any = None) -> str | None:
    """A journal path must name a file, not a directory ("" = the default in the user data dir)."""
    if not value:
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        return f"{str(path)!r} is a directory; give a file path such as \"{path / 'journal.sqlite3'}\""
    return None


# Imported lazily by config: the valid counter modes live there (COUNTER_MODES).
def field_checks(counter_modes: tuple[str, ...]) -> dict[tuple[str, str], Check]:
    """Every checked (section, key); keys not listed only need the right type."""
    return {
        ("proxy", "listen"): _listen,
        ("proxy", "upstream"): _upstream,
        ("proxy", "analysis"): one_of("process", "thread"),
        ("proxy", "capture_limit_mb"): at_least(1),
        ("proxy", "backlog_mb"): at_least(1),
        ("proxy", "header_timeout"): at_least(1),
        ("proxy", "body_timeout"): at_least(1),
        ("journal", "path"): journal_path_problem,
        ("journal", "retention_days"): at_least(0, "0 keeps rows of any age"),
        ("journal", "max_rows"): at_least(0, "0 keeps any number of rows"),
        ("anatomy", "counter"): one_of(*counter_modes),
        ("server", "url"): _upstream,
        ("server", "poll_interval"): positive,
        ("server", "stop_timeout"): positive,
        ("server", "ctx_size"): at_least(0, "0: the model's own"),
        ("server", "parallel"): at_least(0, "0: llama-server's default"),
        ("server", "port"): port_number,
        ("agent", "context_window"): at_least(0, "0: the agent's own default"),
        ("compact", "mode"): one_of("pane", "proxy"),
        ("compact", "keep_turns"): at_least(0),
        ("gpu", "interval"): positive,
        ("dashboard", "sparkline_requests"): at_least(1),
        ("dashboard", "log_lines"): at_least(1),
        ("dashboard", "demo_speed"): positive,
        ("otel", "endpoint"): _otel_endpoint,
        ("otel", "headers_env"): _env_name,
        ("otel", "service_name"): _nonempty,
        ("otel", "timeout"): positive,
        ("serve", "listen"): _listen,
    }
