"""Parse GET /slots and /props bodies into snapshot fields, tolerating older llama-server shapes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tui.core.poll.snapshots import SlotSnapshot


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return default


def _next_token(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    # This tree sends a one-element array; the README (and older builds) show an object.
    value = raw.get("next_token")
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, Mapping) else {}


def parse_slot(
    raw: Mapping[str, Any], ts: float, previous: SlotSnapshot | None = None, previous_ts: float | None = None
) -> SlotSnapshot:
    """One /slots entry; decode_rate comes from the n_decoded delta against the previous poll."""
    id_task_raw = raw.get("id_task")
    id_task = id_task_raw if isinstance(id_task_raw, int) and not isinstance(id_task_raw, bool) else None
    is_processing = bool(raw.get("is_processing", False))
    n_decoded = _int(_next_token(raw).get("n_decoded"))
    rate: float | None = None
    if (
        is_processing
        and previous is not None
        and previous_ts is not None
        and previous.is_processing
        and previous.id_task == id_task
        and ts > previous_ts
        and n_decoded >= previous.n_decoded
    ):
        rate = (n_decoded - previous.n_decoded) / (ts - previous_ts)
    return SlotSnapshot(
        id=_int(raw.get("id")),
        n_ctx=_int(raw.get("n_ctx")),
        is_processing=is_processing,
        id_task=id_task,
        n_prompt_tokens=_int(raw.get("n_prompt_tokens")),
        n_prompt_tokens_processed=_int(raw.get("n_prompt_tokens_processed")),
        n_prompt_tokens_cache=_int(raw.get("n_prompt_tokens_cache")),
        n_decoded=n_decoded,
        decode_rate=rate,
    )


def parse_slots(
    body: Any, ts: float, previous: tuple[SlotSnapshot, ...] = (), previous_ts: float | None = None
) -> tuple[SlotSnapshot, ...]:
    """All slots from a /slots body (a JSON array), sorted by id."""
    if not isinstance(body, list):
        return ()
    by_id = {s.id: s for s in previous}
    slots = [
        parse_slot(item, ts, by_id.get(_int(item.get("id"))), previous_ts)
        for item in body
        if isinstance(item, Mapping)
    ]
    return tuple(sorted(slots, key=lambda s: s.id))


def parse_props(body: Any) -> dict[str, Any]:
    """The fields of GET /props the poller keeps: model, build, slots, per-slot n_ctx, sleeping."""
    if not isinstance(body, Mapping):
        return {}
    settings = body.get("default_generation_settings")
    n_ctx = _int(settings.get("n_ctx")) if isinstance(settings, Mapping) else 0
    model_path = body.get("model_path")
    alias = body.get("model_alias")
    build = body.get("build_info")
    caps = body.get("chat_template_caps")
    tools = caps.get("supports_tools") if isinstance(caps, Mapping) else None
    return {
        "supports_tools": tools if isinstance(tools, bool) else None,
        "model": alias if isinstance(alias, str) else "",
        "model_path": model_path if isinstance(model_path, str) else "",
        "build": build if isinstance(build, str) else "",
        "n_slots": _int(body.get("total_slots")),
        "n_ctx_slot": n_ctx,
        "is_sleeping": bool(body.get("is_sleeping", False)),
    }


def parse_models(body: Any) -> tuple[str, int | None]:
    """Model id and meta.n_ctx_train from GET /v1/models (empty / None when absent)."""
    if not isinstance(body, Mapping):
        return "", None
    data = body.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], Mapping):
        return "", None
    first = data[0]
    model_id = first.get("id")
    meta = first.get("meta")
    n_ctx_train = _int(meta.get("n_ctx_train"), -1) if isinstance(meta, Mapping) else -1
    return (model_id if isinstance(model_id, str) else ""), (n_ctx_train if n_ctx_train > 0 else None)
