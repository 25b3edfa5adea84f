"""The server's per-slot n_ctx, asked from /props with the standard library only (cheap to import)."""

from __future__ import annotations

import json
import os
from urllib.parse import urlsplit

# Claude Code's window variables as `ctxbudget env` sets them (both hold the server's per-slot n_ctx).
WINDOW_ENV = ("CLAUDE_CODE_AUTO_COMPACT_WINDOW", "CLAUDE_CODE_MAX_CONTEXT_TOKENS")


def slot_n_ctx(upstream: str, api_key: str = "", timeout: float = 0.25) -> int | None:
    """default_generation_settings.n_ctx from GET {upstream}/props, or None when it cannot be asked."""
    raw = _get(upstream, "/props", api_key, timeout)
    try:
        data = json.loads(raw) if raw is not None else None
    except ValueError:
        return None
    settings = data.get("default_generation_settings") if isinstance(data, dict) else None
    n_ctx = settings.get("n_ctx") if isinstance(settings, dict) else None
    return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None


def env_window(environ: dict[str, str] | None = None) -> int | None:
    """The window Claude Code was started with (CLAUDE_CODE_AUTO_COMPACT_WINDOW, else MAX_CONTEXT_TOKENS)."""
    env = os.environ if environ is None else environ
    for name in WINDOW_ENV:
        value = env.get(name, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def _get(upstream: str, path: str, api_key: str, timeout: float) -> bytes | None:
    import http.client

    parts = urlsplit(upstream)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        conn.request("GET", parts.path.rstrip("/") + path, headers=headers)
        response = conn.getresponse()
        return response.read() if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def measured_prompt_speed(upstream: str, api_key: str = "", timeout: float = 1.0) -> float | None:
    """Prompt tokens per second over the server's life, from /metrics (needs llama-server --metrics)."""
    raw = _get(upstream, "/metrics", api_key, timeout)
    if raw is None:
        return None
    values: dict[str, float] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        name, _, value = line.partition(" ")
        if name in ("llamacpp:prompt_tokens_total", "llamacpp:prompt_seconds_total"):
            try:
                values[name] = float(value)
            except ValueError:
                return None
    tokens = values.get("llamacpp:prompt_tokens_total")
    seconds = values.get("llamacpp:prompt_seconds_total")
    return tokens / seconds if tokens and seconds else None
