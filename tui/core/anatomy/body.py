"""Routing by path and decoding of request/response bodies (content-encoding, JSON)."""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import Any

import orjson


def header(headers: dict[str, str], name: str) -> str:
    """Case-insensitive header lookup (`name` in lower case)."""
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


@dataclass(frozen=True)
class Route:
    """Which dialect a path speaks and whether it only counts tokens."""

    dialect: str  # "anthropic" | "openai"
    counting: bool


def route(method: str, path: str) -> Route | None:
    """The model endpoint a request targets, None for anything else (/health, /slots...)."""
    if method.upper() != "POST":
        return None
    bare = path.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    if bare.endswith("/messages/count_tokens"):
        return Route("anthropic", True)
    if bare.endswith("/v1/messages") or bare == "/messages":
        return Route("anthropic", False)
    if bare.endswith("/chat/completions/input_tokens"):
        return Route("openai", True)
    if bare.endswith("/chat/completions"):
        return Route("openai", False)
    return None


class BodyError(ValueError):
    """A body that cannot be read as JSON; the message is the unparsed reason."""


def decode_bytes(data: bytes, headers: dict[str, str]) -> bytes:
    """Undo gzip/deflate content-encoding (by header, or by gzip magic); raise BodyError otherwise."""
    encoding = header(headers, "content-encoding").strip().lower()
    try:
        if encoding in ("gzip", "x-gzip") or (not encoding and data[:2] == b"\x1f\x8b"):
            return gzip.decompress(data)
        if encoding == "deflate":
            try:
                return zlib.decompress(data)
            except zlib.error:
                return zlib.decompress(data, -zlib.MAX_WBITS)
    except (OSError, EOFError, zlib.error) as exc:
        raise BodyError(f"cannot decode {encoding or 'gzip'} body: {exc}") from exc
    if encoding in ("", "identity"):
        return data
    raise BodyError(f"content-encoding {encoding!r} not supported")


def parse_json_object(data: bytes, truncated: bool = False) -> dict[str, Any]:
    """The body as a JSON object; BodyError names what is wrong."""
    if not data.strip():
        raise BodyError("empty request body")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if truncated:
            raise BodyError(f"request body truncated at {len(data)} bytes") from exc
        head = data.lstrip()[:1]
        if head in (b"{", b"["):
            raise BodyError(f"malformed JSON: {exc}") from exc
        raise BodyError("request body is not JSON") from exc
    if not isinstance(value, dict):
        raise BodyError(f"unknown request shape: JSON {type(value).__name__}, expected an object")
    return value


def guess_dialect(body: dict[str, Any]) -> str:
    """Dialect of a body seen without its path (inspect): Anthropic markers, else OpenAI."""
    if "system" in body or "anthropic_version" in body or "output_config" in body:
        return "anthropic"
    tools = body.get("tools")
    if isinstance(tools, list) and any(isinstance(t, dict) and "input_schema" in t for t in tools):
        return "anthropic"
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        if message.get("role") in ("tool", "developer") or "tool_calls" in message:
            return "openai"
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") in (
                    "tool_use",
                    "tool_result",
                    "thinking",
                    "redacted_thinking",
                    "image",
                ):
                    return "anthropic"
                if isinstance(block, dict) and block.get("type") == "image_url":
                    return "openai"
    return "openai"
