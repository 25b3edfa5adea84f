"""What the server reported about a response: usage, timings and stop reason from JSON or SSE bytes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tui.core.records import Usage


@dataclass
class _Acc:
    """Fields collected while walking a response; the last value seen wins."""

    input_tokens: int | None = None
    cache_read: int | None = None
    cache_creation: int | None = None
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    output_tokens: int | None = None
    stop_reason: str | None = None
    timings: dict[str, Any] | None = None
    anthropic: bool = False
    model: str | None = None

    def usage(self) -> Usage:
        prompt, cached = self.prompt_tokens, self.cached_tokens
        if self.anthropic and self.input_tokens is not None:
            # Anthropic input_tokens leaves out what came from the cache.
            cached = self.cache_read
            prompt = self.input_tokens + (self.cache_read or 0) + (self.cache_creation or 0)
        output = self.output_tokens
        t = self.timings or {}
        prompt_n, cache_n, predicted_n = (
            _int(t.get("prompt_n")),
            _int(t.get("cache_n")),
            _int(t.get("predicted_n")),
        )
        if prompt is None and prompt_n is not None:
            prompt = prompt_n + (cache_n or 0)
        if cached is None and cache_n is not None:
            cached = cache_n
        if output is None and predicted_n is not None:
            output = predicted_n
        return Usage(
            prompt_tokens=prompt,
            cached_tokens=cached,
            output_tokens=output,
            prompt_per_second=_float(t.get("prompt_per_second")),
            gen_per_second=_float(t.get("predicted_per_second")),
            prompt_ms=_float(t.get("prompt_ms")),
            gen_ms=_float(t.get("predicted_ms")),
            stop_reason=self.stop_reason,
            draft_tokens=_int(t.get("draft_n")),
            draft_accepted=_int(t.get("draft_n_accepted")),
            response_model=self.model,
        )


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _take_anthropic_usage(acc: _Acc, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    acc.anthropic = True
    for key, attr in (
        ("input_tokens", "input_tokens"),
        ("cache_read_input_tokens", "cache_read"),
        ("cache_creation_input_tokens", "cache_creation"),
        ("output_tokens", "output_tokens"),
    ):
        value = _int(usage.get(key))
        if value is not None:
            setattr(acc, attr, value)


def _take_openai_usage(acc: _Acc, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    prompt, output = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    if prompt is not None:
        acc.prompt_tokens = prompt
    if output is not None:
        acc.output_tokens = output
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict) and _int(details.get("cached_tokens")) is not None:
        acc.cached_tokens = _int(details.get("cached_tokens"))


def _take_object(acc: _Acc, obj: Any) -> None:
    """Fold one JSON object (a whole response or one SSE event) into the accumulator."""
    if not isinstance(obj, dict):
        return
    model = obj.get("model")
    if isinstance(model, str) and model:
        acc.model = model
    kind = obj.get("type")
    if kind == "message_start" and isinstance(obj.get("message"), dict):
        _take_object(acc, obj["message"])
        return
    if kind == "message_delta":
        delta = obj.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason"):
            acc.stop_reason = str(delta["stop_reason"])
        _take_anthropic_usage(acc, obj.get("usage"))
        return
    if kind == "message":
        _take_anthropic_usage(acc, obj.get("usage"))
        if obj.get("stop_reason"):
            acc.stop_reason = str(obj["stop_reason"])
        return
    if "input_tokens" in obj and "messages" not in obj and kind is None and "usage" not in obj:
        acc.prompt_tokens = _int(obj.get("input_tokens"))  # count_tokens / input_tokens replies
    error = obj.get("error")
    if isinstance(error, dict) and _int(error.get("n_prompt_tokens")) is not None:
        acc.prompt_tokens = _int(error.get("n_prompt_tokens"))  # exceed_context_size_error
    if "usage" in obj and obj.get("usage") is not None:
        usage = obj["usage"]
        if isinstance(usage, dict) and "prompt_tokens" in usage:
            _take_openai_usage(acc, usage)
        else:
            _take_anthropic_usage(acc, usage)
    if isinstance(obj.get("timings"), dict):
        acc.timings = obj["timings"]
    choices = obj.get("choices")
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict) and choice.get("finish_reason"):
                acc.stop_reason = str(choice["finish_reason"])
    if obj.get("stop_type") and acc.stop_reason is None:
        acc.stop_reason = str(obj["stop_type"])  # native /completion
    if _int(obj.get("tokens_evaluated")) is not None and acc.prompt_tokens is None:
        acc.prompt_tokens = _int(obj.get("tokens_evaluated"))


# Events worth decoding; the many content deltas in between are skipped without parsing.
_SSE_MARKERS = (b"usage", b"timings", b"finish_reason", b"stop_reason", b"message_start", b"error")


def _walk_sse(acc: _Acc, body: bytes) -> None:
    for line in body.splitlines():
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]" or not any(m in payload for m in _SSE_MARKERS):
            continue
        try:
            _take_object(acc, orjson.loads(payload))
        except orjson.JSONDecodeError:
            continue


def is_sse(body: bytes, content_type: str = "") -> bool:
    """Whether a response body is a server-sent event stream."""
    if "text/event-stream" in content_type:
        return True
    head = body.lstrip()[:16]
    return head.startswith((b"data:", b"event:", b":"))


def parse_usage(body: bytes, content_type: str = "") -> Usage:
    """Usage from a JSON or SSE response body (partial/truncated streams give what they hold)."""
    acc = _Acc()
    if not body:
        return Usage()
    if is_sse(body, content_type):
        _walk_sse(acc, body)
    else:
        try:
            _take_object(acc, orjson.loads(body))
        except orjson.JSONDecodeError:
            return Usage()
    return acc.usage()
