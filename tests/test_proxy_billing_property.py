"""Property: wherever the billing line sits and however the JSON is written, only the system copy changes."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
from builders import cc_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.rewriters import make_rewriter

from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.transforms.pipeline import TransformPipeline
from tui.core.transforms.settings import TransformSettings

LINE = "x-anthropic-billing-header: cc_version=2.1.197.9e1; cc_entrypoint=cli; cch=a1b2c;"
SETTINGS = TransformSettings()


def place(body: dict[str, Any], where: str, text: str) -> None:
    """Put `text` in one part of a Claude-Code-shaped body."""
    if where.startswith("system") and isinstance(body["system"], str):
        body["system"] += "\n" + text
    elif where == "system-block":
        body["system"][0]["text"] = text
    elif where == "system-after-newline":
        body["system"][2]["text"] += "\n" + text
    elif where == "system-string":
        body["system"] = text + "\nYou are an agent."
    elif where == "user-text":
        body["messages"][0]["content"][2]["text"] = text
    elif where == "tool-result":
        body["messages"][2]["content"][0]["content"] = text
    elif where == "tool-input":
        body["messages"][1]["content"][-1]["input"]["command"] = text
    elif where == "tool-description":
        body["tools"][1]["description"] = text


PLACES = [
    "system-block",
    "system-after-newline",
    "system-string",
    "user-text",
    "tool-result",
    "tool-input",
    "tool-description",
]


def write(body: dict[str, Any], rng: random.Random) -> bytes:
    """JSON as some client might write it: compact or indented, ASCII-escaped or not, a letter escaped."""
    text = json.dumps(body, indent=rng.choice([None, 1, 2]), ensure_ascii=rng.random() < 0.5)
    if rng.random() < 0.3:  # one occurrence spelled with an escaped letter
        text = text.replace("x-anthropic-billing-header", "\\u0078-anthropic-billing-header", 1)
    return text.encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(st.sampled_from(PLACES), min_size=1, max_size=3, unique=True), st.randoms(use_true_random=False)
)
def test_only_the_system_prompt_copy_is_rewritten(
    tmp_path: Path, places: list[str], rng: random.Random
) -> None:
    body = cc_request(billing="You are Claude Code.")
    body["messages"][0]["content"][2]["text"] = "répare le test"
    for where in places:
        place(body, where, LINE)
    raw = write(body, rng)
    rewriter = make_rewriter(
        SETTINGS,
        (),
        McpSwitchStore(tmp_path / "m.json"),
        TransformSwitchStore(SETTINGS.enabled, tmp_path / "t.json"),
    )
    out, _ = rewriter.process("POST", "/v1/messages", {}, raw)
    parsed = orjson.loads(raw)
    expected, _ = TransformPipeline(SETTINGS).run(parsed, "anthropic", ("stabilize",))
    assert orjson.loads(out) == expected
    # What differs lies inside string values only (no quote in between): the rest is the client's.
    head = 0
    while head < min(len(raw), len(out)) and raw[head] == out[head]:
        head += 1
    tail = 0
    while tail < min(len(raw), len(out)) - head and raw[-1 - tail] == out[-1 - tail]:
        tail += 1
    changed_raw = raw[head : len(raw) - tail]
    if expected is parsed:
        assert out == raw
    elif sum(1 for w in places if w.startswith("system")) == 1:
        assert b'"' not in changed_raw, changed_raw
