"""Where spans go: the OTLP/HTTP traces URL and the auth headers, read from [otel] and the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from tui.core.redact import redact_url
from tui.core.settings_checks import host_kind

TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class OtelTarget:
    """The resolved export target (headers hold secrets: never log or show them, only their names)."""

    traces_url: str
    headers: tuple[tuple[str, str], ...]
    service_name: str
    timeout: float
    problem: str | None = None  # set when the headers could not be read as configured

    @property
    def safe_url(self) -> str:
        """The traces URL with any password in it redacted."""
        return redact_url(self.traces_url)


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL: a base URL gets /v1/traces appended, a URL ending in it is kept."""
    endpoint = endpoint.strip()
    if urlsplit(endpoint).path.rstrip("/").endswith(TRACES_PATH):
        return endpoint
    return endpoint.rstrip("/") + TRACES_PATH


def parse_headers(text: str, source: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
    """Headers from "key=value,key2=value2" (values URL-encoded, as OTEL_EXPORTER_OTLP_HEADERS).

    Returns the pairs and a problem that names the bad entry by position (never its value).
    """
    pairs: list[tuple[str, str]] = []
    for index, entry in enumerate(text.split(","), start=1):
        if not entry.strip():
            continue
        key, sep, value = entry.partition("=")
        key = key.strip()
        if not sep or not key or any(c.isspace() for c in key):
            return (), f"{source}: entry {index} is not key=value; write e.g. authorization=Bearer%20TOKEN"
        pairs.append((key, unquote(value.strip())))
    return tuple(pairs), None


def resolve_target(
    endpoint: str,
    headers_env: str,
    service_name: str,
    timeout: float,
    environ: Mapping[str, str] | None = None,
) -> OtelTarget:
    """Build the target; a missing or malformed headers variable becomes `problem` (export goes on)."""
    env = os.environ if environ is None else environ
    headers: tuple[tuple[str, str], ...] = ()
    problem: str | None = None
    if headers_env:
        raw = env.get(headers_env)
        if raw is None:
            problem = f"[otel] headers_env: {headers_env} is not set; spans are sent without those headers"
        else:
            headers, problem = parse_headers(raw, headers_env)
    url = traces_url(endpoint)
    parts = urlsplit(url)
    if headers and parts.scheme == "http" and host_kind((parts.hostname or "").strip("[]")) != "loopback":
        problem = (
            f"[otel] endpoint: the {headers_env} headers go in clear text over http:// to "
            f"{parts.hostname}; use an https:// endpoint"
        )
    return OtelTarget(url, headers, service_name, timeout, problem)
