"""The session id a client states in a request (header or metadata), read without analysis."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tui.core.anatomy.sessions import SESSION_HEADERS


def session_hint(headers: Mapping[str, str], body: dict[str, Any]) -> str:
    """The client's session id when it states one (header or metadata.user_id JSON), else ''."""
    for name in SESSION_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            return value
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id.startswith("{"):
        try:
            decoded = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return ""
        if isinstance(decoded, dict) and decoded.get("session_id"):
            return str(decoded["session_id"])
    return ""
