"""What the server is doing: progress states, /health and /props probes, the log's first errors."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core.actions.server_launch import PidRecord
from tui.core.poll.snapshots import RouterModel

_LOG_PREFIX = re.compile(r"^\d+\.\d+\.\d+\.\d+ [A-Z] ")
_ERROR_LINE = re.compile(r"^\d+\.\d+\.\d+\.\d+ E |^error[: ]|\berror\b|\bfailed\b", re.IGNORECASE)


@dataclass(frozen=True)
class ServerState:
    """One progress step: stopping, starting, loading, up, failed or down."""

    phase: str
    message: str
    pid: int | None = None
    url: str = ""
    error_lines: tuple[str, ...] = ()
    ts: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (control API, `server --json`)."""
        return {
            "phase": self.phase,
            "message": self.message,
            "pid": self.pid,
            "url": self.url,
            "error_lines": list(self.error_lines),
            "ts": self.ts,
        }


StateCallback = Callable[[ServerState], None]


@dataclass(frozen=True)
class ServerStatus:
    """Who runs the server on the configured port and in which state it is."""

    phase: str
    url: str
    owned: bool
    pid: int | None = None
    foreign_pids: tuple[int, ...] = ()
    model: str = ""
    n_ctx_slot: int | None = None
    total_slots: int | None = None
    record: PidRecord | None = None
    last: dict[str, Any] | None = None
    models: tuple[RouterModel, ...] = ()  # router mode: each model with its state and n_ctx

    def describe(self) -> str:
        """One or two lines for the CLI and the dashboard."""
        who = f"started by ctxbudget (pid {self.pid})" if self.owned else "not started by ctxbudget"
        if self.foreign_pids:
            who += f" (pid {', '.join(map(str, self.foreign_pids))})"
        if self.phase == "up" and self.models:
            lines = [f"up at {self.url}, {who}: router with {len(self.models)} model(s)"]
            for m in self.models:
                size = f", {m.n_slots} slot(s) × {m.n_ctx_slot} tokens" if m.n_ctx_slot else ""
                code = f" (exit {m.exit_code})" if m.exit_code is not None and m.status == "failed" else ""
                lines.append(f"  {m.id}: {m.status}{code}{size}")
            return "\n".join(lines)
        if self.phase == "up":
            slots = f", {self.total_slots} slot(s) × {self.n_ctx_slot} tokens" if self.n_ctx_slot else ""
            return f"up at {self.url}, {who}: {self.model}{slots}"
        if self.phase in ("loading", "starting"):
            return f"{self.phase} at {self.url}, {who}"
        text = f"down ({self.url})"
        if self.last and self.last.get("phase") == "failed":
            text += f"; last start failed: {self.last.get('message', '')}"
            lines = self.last.get("error_lines") or []
            text += "".join(f"\n  {line}" for line in lines)
        return text

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "phase": self.phase,
            "url": self.url,
            "owned": self.owned,
            "pid": self.pid,
            "foreign_pids": list(self.foreign_pids),
            "model": self.model,
            "n_ctx_slot": self.n_ctx_slot,
            "total_slots": self.total_slots,
            "record": self.record.to_json() if self.record else None,
            "last": self.last,
            "router": bool(self.models),
            "models": [m.to_json() for m in self.models],
        }


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def probe_health(url: str, timeout: float = 2.0) -> str:
    """ "up" (200), "loading" (503) or "down" (no answer / other)."""
    import httpx  # deferred: the dashboard imports this module at start

    try:
        code = httpx.get(url + "/health", timeout=timeout).status_code
    except httpx.HTTPError:
        return "down"
    return "up" if code == 200 else "loading" if code == 503 else "down"


def fetch_props(url: str, api_key: str = "", timeout: float = 3.0) -> dict[str, Any] | None:
    """GET /props, None when it does not answer 200."""
    import httpx

    try:
        response = httpx.get(url + "/props", headers=_headers(api_key), timeout=timeout)
        data = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def error_lines(*paths: Path, limit: int = 6) -> tuple[str, ...]:
    """The first error lines of the log (or of stderr when the log has none)."""
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        found: list[str] = []
        for line in text.splitlines():
            raw = line.strip()
            line = _LOG_PREFIX.sub("", raw)
            if line and _ERROR_LINE.search(raw) and line not in found:
                found.append(line)
            if len(found) >= limit:
                break
        if found:
            return tuple(found)
    return ()


def port_is_free(host: str, port: int) -> bool:
    """Nothing accepts connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0
