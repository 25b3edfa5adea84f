"""Property tests: transforms never raise, never mutate, and keep every request's shape and ids."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.core.transforms.pipeline import run_transforms
from tui.core.transforms.prose import compress_prose
from tui.core.transforms.registry import TRANSFORM_ORDER
from tui.core.transforms.settings import TransformSettings
from tui.core.transforms.slimming import SlimLimits, slim_text
from tui.core.transforms.suggest import suggest_pattern

WORDS = [
    "the",
    "a",
    "an",
    "please",
    "just",
    "could you",
    "`x`",
    "/a/the",
    "http://t.co/a",
    '"the"',
    "漢字",
    "😀",
    "e\u0301",
    "\x1b[31m",
    "\n",
    "  ",
    "```",
    "<system-reminder>",
    "</system-reminder>",
    "{",
    "}",
    "'",
]
texts = st.one_of(
    st.text(max_size=300),
    st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=60).map(" ".join),
)
ids = st.text(alphabet="abcdef0123456789_", min_size=1, max_size=12)
SETTINGS = TransformSettings(
    slim_max_chars=200,
    slim_max_lines=12,
    trim_min_chars=20,
    stabilizer_patterns=[r"[system,tools,messages] \d+ => 0"],
)


@st.composite
def anthropic_bodies(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    for turn in range(draw(st.integers(0, 5))):
        use_id = f"toolu_{turn}_{draw(ids)}"
        messages.append(
            {
                "role": "user",
                "content": draw(
                    st.one_of(
                        texts, st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts), max_size=3)
                    )
                ),
            }
        )
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": draw(texts), "signature": "s"},
                    {"type": "text", "text": draw(texts)},
                    {
                        "type": "tool_use",
                        "id": use_id,
                        "name": draw(st.sampled_from(["Bash", "Read", "x"])),
                        "input": {"command": draw(texts)},
                    },
                ],
            }
        )
        result = draw(
            st.one_of(texts, st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts), max_size=2))
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use_id, "content": result},
                    {"type": "text", "text": draw(texts)},
                ],
            }
        )
    system = draw(
        st.one_of(texts, st.lists(st.builds(lambda t: {"type": "text", "text": t}, texts), max_size=3))
    )
    tools = draw(
        st.lists(
            st.builds(
                lambda n, d: {"name": n, "description": d, "input_schema": {"type": "object"}}, ids, texts
            ),
            max_size=3,
        )
    )
    return {"system": system, "tools": tools, "messages": messages}


@st.composite
def openai_bodies(draw: st.DrawFn) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": draw(texts)}]
    for turn in range(draw(st.integers(0, 5))):
        call_id = f"call_{turn}_{draw(ids)}"
        messages.append({"role": "user", "content": draw(texts)})
        messages.append(
            {
                "role": "assistant",
                "content": draw(texts),
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "bash", "arguments": json.dumps(draw(texts))},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": draw(texts)})
    tools = draw(
        st.lists(
            st.builds(
                lambda n, d: {
                    "type": "function",
                    "function": {"name": n, "description": d, "parameters": {}},
                },
                ids,
                texts,
            ),
            max_size=3,
        )
    )
    return {"tools": tools, "messages": messages}


def skeleton(value: Any) -> Any:
    """The body with every string that transforms may rewrite blanked out."""
    if isinstance(value, dict):
        return {
            k: "<text>" if k in REWRITABLE and isinstance(v, str) else skeleton(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [skeleton(v) for v in value]
    return value


REWRITABLE = frozenset({"text", "description", "content", "system"})


def check(body: dict[str, Any], dialect: str) -> None:
    snapshot = copy.deepcopy(body)
    new_body, reports = run_transforms(body, dialect, list(TRANSFORM_ORDER), SETTINGS)
    assert body == snapshot
    assert all("failed" not in " ".join(r.details) for r in reports)
    assert skeleton(new_body) == skeleton(body)
    json.dumps(new_body)
    again, _ = run_transforms(new_body, dialect, ["stabilize", "trim_descriptions"], SETTINGS)
    assert again == new_body, "stabilizing and trimming are idempotent"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(anthropic_bodies())
def test_anthropic_bodies_keep_their_shape(body: dict[str, Any]) -> None:
    check(body, "anthropic")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(openai_bodies())
def test_openai_bodies_keep_their_shape(body: dict[str, Any]) -> None:
    check(body, "openai")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "system",
                    "tools",
                    "messages",
                    "role",
                    "content",
                    "type",
                    "text",
                    "tool_use_id",
                    "function",
                    "description",
                    "name",
                    "id",
                    "tool_calls",
                    "tool_call_id",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["system", "tools", "messages", "model"]), json_values, max_size=4),
    st.sampled_from(["anthropic", "openai"]),
)
def test_arbitrary_json_never_raises_or_mutates(body: dict[str, Any], dialect: str) -> None:
    snapshot = copy.deepcopy(body)
    new_body, reports = run_transforms(body, dialect, list(TRANSFORM_ORDER), SETTINGS)
    assert body == snapshot
    assert all("failed" not in " ".join(r.details) for r in reports)
    assert set(new_body) == set(body)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_prose_keeps_every_protected_token(text: str) -> None:
    out = compress_prose(text)
    for token in ("`x`", "/a/the", "http://t.co/a", '"the"', "漢字", "😀", "e\u0301"):
        assert out.count(token) >= text.count(token), token
    assert len(out) <= len(text)


@settings(max_examples=300, deadline=None)
@given(texts, st.integers(3, 50), st.integers(0, 400))
def test_slimming_respects_limits_and_is_idempotent(text: str, max_lines: int, max_chars: int) -> None:
    limits = SlimLimits(max_chars=max_chars + 100, max_lines=max_lines)
    once, _ = slim_text(text, limits)
    assert len(once) <= max(limits.max_chars, len(text))
    # A cut inside a long line puts its marker on a line of its own: at most two lines more.
    assert len(once.split("\n")) <= max(max_lines, text.count("\n") + 1) + 2
    assert slim_text(once, limits)[0] == once


volatile = st.text(alphabet="0123456789abcdef", min_size=1, max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200), st.text(max_size=200), volatile, volatile)
def test_suggested_patterns_make_the_two_versions_equal(left: str, right: str, one: str, two: str) -> None:
    old, new = f"{left} id={one}; {right}", f"{left} id={two}; {right}"
    regex = suggest_pattern(old, new)
    if one == two:
        assert regex is None
        return
    assert regex is not None
    compiled = re.compile(regex)
    assert compiled.sub("0", old) == compiled.sub("0", new)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.text(max_size=300))
def test_suggest_pattern_never_raises_and_never_lies(old: str, new: str) -> None:
    regex = suggest_pattern(old, new)
    if regex is not None:
        assert re.sub(regex, "0", old) == re.sub(regex, "0", new)
