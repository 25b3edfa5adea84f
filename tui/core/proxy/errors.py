"""Error bodies in the client's own API dialect (Anthropic or OpenAI)."""

from __future__ import annotations

import orjson

ANTHROPIC_PREFIX = "/v1/messages"


def dialect_for_path(path: str) -> str:
    """"anthropic" for the Messages API routes, "openai" for everything else."""
    return "anthropic" if path.startswith(ANTHROPIC_PREFIX) else "openai"


def error_payload(dialect: str, message: str, status: int = 502) -> dict[str, object]:
    """The JSON error object a client of that dialect knows how to show."""
    if status == 401:  # each API's own words for a bad key
        if dialect == "anthropic":
            return {"type": "error", "error": {"type": "authentication_error", "message": message}}
        return {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
    if dialect == "anthropic":
        return {"type": "error", "error": {"type": "api_error", "message": message}}
    return {"error": {"message": message, "type": "upstream_error", "code": status}}


def error_body(dialect: str, message: str, status: int = 502) -> bytes:
    """The error as a JSON response body."""
    return orjson.dumps(error_payload(dialect, message, status))


def sse_error_event(dialect: str, message: str, status: int = 502) -> bytes:
    """The error as one SSE event, for failures after a stream has started."""
    data = orjson.dumps(error_payload(dialect, message, status))
    if dialect == "anthropic":
        return b"event: error\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"
