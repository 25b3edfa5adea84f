"""How a request ended, in words for its row: a client that gave up, an upstream error, a cut-off proxy."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import orjson

from tui.core.redact import redact_text

if TYPE_CHECKING:
    from tui.core.anatomy.exchange import Exchange

CLIENT_GONE = "client disconnected"  # what the forwarder notes when writing to the client fails
CLIENT_GAVE_UP = "client closed the connection"  # how the explanation of a give-up starts
MAX_ERROR_CHARS = 600
# Deliveries key prefix of a request's provisional row (the rest is the flight name, "<pid>-<ns>-<n>").
FLIGHT_KEY = "flight:"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (a proxy that wrote provisional rows)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def flight_pid(flight: str) -> int | None:
    """The proxy process id a flight name starts with (None when unreadable)."""
    head = flight.removeprefix(FLIGHT_KEY).split("-", 1)[0]
    return int(head) if head.isdigit() else None


def interrupted_error(pid: int | None) -> str:
    """What the row of a request says when the proxy stopped before its response ended."""
    who = f" (pid {pid})" if pid else ""
    return f"the proxy{who} stopped before the response ended; the client's request was cut off"


def gave_up_error(total_ms: float | None, ttfb_ms: float | None, response_bytes: int) -> str:
    """The explanation of a client that closed the connection before the response ended."""
    elapsed = (total_ms or 0) / 1000
    seconds = f"{elapsed:.0f} s" if elapsed >= 10 else f"{elapsed:.1f} s"
    if ttfb_ms is None:
        return (
            f"{CLIENT_GAVE_UP} after {seconds} before the first response byte (the server "
            "was still queueing or processing the prompt): raise the agent's timeout or shorten the "
            "prompt; the proxy closed the upstream connection (llama-server cancels the task)"
        )
    return (
        f"{CLIENT_GAVE_UP} after {seconds} while the response streamed "
        f"({response_bytes:,} bytes sent): the agent stopped reading (interrupted by its user or its "
        "own timeout); the proxy closed the upstream connection (llama-server cancels the task)"
    )


def upstream_message(body: bytes) -> str | None:
    """The error text in an upstream error body (JSON `error.message`, `error`, `message`, or plain text)."""
    text = body.strip()
    if not text:
        return None
    try:
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        line = text.decode("utf-8", "replace").splitlines()[0] if text else ""
        return line or None
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or error.get("type")
            return str(message) if message else None
        if isinstance(error, str):
            return error
    return None


def outcome_error(exchange: Exchange, state: str = "done") -> str | None:
    """The row's error text: the proxy's own note, explained, or the upstream's message for 4xx/5xx."""
    if state == "in_flight":
        return None
    if state == "interrupted":
        return interrupted_error(None)
    error = exchange.error
    if error == CLIENT_GONE:
        error = gave_up_error(exchange.total_ms, exchange.ttfb_ms, len(exchange.response_body))
    elif error is None and exchange.status >= 400:
        message = upstream_message(exchange.response_body)
        if message:
            error = f"upstream {exchange.status}: {message}"
    if error is None:
        return None
    error = redact_text(error)
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"
