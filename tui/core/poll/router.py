"""Router-mode llama-server (--models-dir / --models-preset): its models and their states from GET /models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tui.core.poll.snapshots import RouterModel

ROUTER_ROLE = "router"
# States a poll asks `?model=NAME&autoload=false` about (autoload=false: b11434 answers 400 "model is not
# loaded" rather than loading it); /slots would wake a sleeping model, so only loaded ones.
POLLABLE = ("loaded",)


def is_router(props_body: Any) -> bool:
    """Whether GET /props (no model) came from a router: b11434 answers {"role": "router", ...}."""
    return isinstance(props_body, Mapping) and props_body.get("role") == ROUTER_ROLE


def model_status(status: Any) -> tuple[str, int | None]:
    """The state word and exit code: "failed" when the last load failed, else the server's value."""
    if not isinstance(status, Mapping):
        return "unknown", None
    value = status.get("value")
    word = value if isinstance(value, str) and value else "unknown"
    code = status.get("exit_code")
    exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
    if status.get("failed") is True and word in ("unloaded", "unknown"):
        return "failed", exit_code
    return word, exit_code


def parse_router_models(body: Any) -> tuple[RouterModel, ...]:
    """Every model of GET /models, in the server's order (entries without an id are skipped)."""
    data = body.get("data") if isinstance(body, Mapping) else None
    out: list[RouterModel] = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
            continue
        raw_status = item.get("status")
        status, exit_code = model_status(raw_status)
        args = raw_status.get("args") if isinstance(raw_status, Mapping) else None
        preset = raw_status.get("preset") if isinstance(raw_status, Mapping) else None
        source = item.get("source")
        out.append(
            RouterModel(
                id=item["id"],
                status=status,
                source=source if isinstance(source, str) else "",
                exit_code=exit_code,
                args=tuple(str(a) for a in args) if isinstance(args, list) else (),
                preset=preset if isinstance(preset, str) else "",
            )
        )
    return tuple(out)


def preset_value(model: RouterModel, *names: str) -> str | None:
    """A launch option of the model: `--name VALUE` in its args (the router's resolved preset)."""
    args = model.args
    for index, arg in enumerate(args[:-1]):
        if arg.lstrip("-") in names:
            return args[index + 1]
    return None
