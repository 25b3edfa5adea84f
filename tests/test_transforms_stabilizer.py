"""Cache stabilizer: volatile prefix content normalized, config patterns, and pattern suggestions."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from corpus_builders import billing_line, claude_code_request, opencode_request

from tui.core.transforms.pipeline import run_transforms
from tui.core.transforms.settings import PatternSpecError, TransformSettings, parse_pattern_spec
from tui.core.transforms.stabilizer import BUILTIN_NAMES, CacheStabilizer
from tui.core.transforms.suggest import suggest_pattern, suggest_pattern_spec


def stabilize(
    body: dict[str, Any], dialect: str = "anthropic", settings: TransformSettings | None = None
) -> dict[str, Any]:
    new_body, _ = run_transforms(body, dialect, ["stabilize"], settings)
    return new_body


def test_billing_hash_and_cch_variants_become_identical() -> None:
    first = claude_code_request(1, ("build",), billing_suffix="abc", cch="1a2b3")
    second = claude_code_request(1, ("build",), billing_suffix="9f0e1d", cch="77c0f")
    assert first["system"][0] != second["system"][0]
    a, b = stabilize(first), stabilize(second)
    assert a["system"] == b["system"]
    assert (
        a["system"][0]["text"]
        == "x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=cli; cch=00000;"
    )


def test_stabilizer_keeps_everything_else_byte_identical() -> None:
    body = claude_code_request(2, ("build", "git_diff"))
    snapshot = copy.deepcopy(body)
    new_body, reports = run_transforms(body, "anthropic", ["stabilize"])
    assert body == snapshot, "the input body was mutated"
    assert reports[0].changed and reports[0].details == [
        "system[0].text: cc_billing_version×1, cc_billing_cch×1"
    ]
    assert new_body["system"][1:] == body["system"][1:]
    assert new_body["messages"] is body["messages"]
    assert new_body["tools"] is body["tools"]
    assert {k: v for k, v in new_body.items() if k != "system"} == {
        k: v for k, v in body.items() if k != "system"
    }


def test_subagent_billing_line_keeps_its_flag() -> None:
    body = {"system": [{"type": "text", "text": billing_line(suffix="e4e", subagent=True)}], "messages": []}
    text = stabilize(body)["system"][0]["text"]
    assert text.endswith("cch=00000; cc_is_subagent=true;")


def test_billing_line_lookalike_outside_system_is_left_alone() -> None:
    line = billing_line(suffix="abc")
    body = {
        "system": "plain system prompt",
        "messages": [{"role": "user", "content": [{"type": "text", "text": line}]}],
    }
    assert stabilize(body) is body


def test_billing_words_not_at_line_start_are_not_rewritten() -> None:
    text = "Docs mention cc_version=2.1.197.abc; cch=1a2b3; as an example."
    body = {"system": text, "messages": []}
    assert stabilize(body)["system"] == text


def test_opt_in_patterns_are_off_by_default() -> None:
    text = (
        "Today's date is 2026-11-21.\nStarted 2026-11-21T08:05:39Z run 123e4567-e89b-12d3-a456-426614174000"
    )
    body = {"system": text, "messages": []}
    assert stabilize(body)["system"] == text
    every = TransformSettings(stabilizer_builtins=list(BUILTIN_NAMES))
    assert stabilize(body, settings=every)["system"] == (
        "Today's date is (not given).\nStarted 2026-11-21 run 00000000-0000-0000-0000-000000000000"
    )


def test_uuid_inside_a_path_is_kept_even_when_enabled() -> None:
    text = "Scratchpad: /tmp/claude-123e4567-e89b-12d3-a456-426614174000/notes.md"
    settings = TransformSettings(stabilizer_builtins=["uuid"])
    assert stabilize({"system": text}, settings=settings)["system"] == text


def test_custom_pattern_respects_its_scopes() -> None:
    settings = TransformSettings(
        stabilizer_builtins=[], stabilizer_patterns=[r"[messages] req-id=\w+ => req-id=0"]
    )
    body = {
        "system": "req-id=abc in system",
        "messages": [
            {"role": "user", "content": "req-id=xyz from the user"},
            {"role": "assistant", "content": "req-id=qqq from the model"},
        ],
    }
    new_body = stabilize(body, settings=settings)
    assert new_body["system"] == "req-id=abc in system"
    assert new_body["messages"][0]["content"] == "req-id=0 from the user"
    assert new_body["messages"][1] is body["messages"][1]


def test_custom_pattern_on_openai_system_and_tool_descriptions() -> None:
    settings = TransformSettings(stabilizer_patterns=[r"[system,tools] build \d+ => build N"])
    body = opencode_request(3, ())
    body["messages"][0]["content"] += "\nbuild 4711"
    body["tools"][0]["function"]["description"] = "Runs build 99 first."
    new_body = stabilize(body, "openai", settings)
    assert new_body["messages"][0]["content"].endswith("\nbuild N")
    assert new_body["tools"][0]["function"]["description"] == "Runs build N first."
    assert new_body["tools"][0]["function"]["parameters"] is body["tools"][0]["function"]["parameters"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no arrow here", "has no ' => '"),
        ("[system,bogus] x => y", "unknown scope"),
        ("[] x => y", "unknown scope"),
        ("(unclosed => y", "bad regex"),
        (r"a(b) => \2", "bad replacement"),
    ],
)
def test_bad_pattern_specs_name_the_fix(spec: str, message: str) -> None:
    with pytest.raises(PatternSpecError, match=re.escape(message)):
        parse_pattern_spec(spec, 3)


def test_pattern_spec_defaults_to_system_scope_and_allows_arrows_in_regex() -> None:
    pattern = parse_pattern_spec(r"a => b => c")
    assert pattern.scopes == ("system",)
    assert pattern.regex.pattern == "a => b"
    assert pattern.replacement == "c"


def test_unknown_builtin_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown stabilizer_builtins"):
        CacheStabilizer.from_settings(TransformSettings(stabilizer_builtins=["nope"]))


def test_suggest_pattern_for_billing_hash() -> None:
    old = billing_line(suffix="abc", cch="1a2b3")
    new = billing_line(suffix="abc", cch="9f9e1")
    regex = suggest_pattern(old, new)
    assert regex == r"(?<=cch=)(?:[0-9a-f]+)(?=;)"
    assert re.sub(regex, "0", old) == re.sub(regex, "0", new)


def test_suggest_pattern_for_both_billing_values_changing_at_once() -> None:
    old = billing_line(suffix="abc", cch="1a2b3")
    new = billing_line(suffix="a9c", cch="1f2e3")
    regex = suggest_pattern(old, new)
    version = r"(?<=cc_version=2\.1\.197\.)(?:[0-9a-f]+)(?=; cc_entrypoint=)"
    assert regex == version + r"|(?<=cch=)(?:[0-9a-f]+)(?=;)"
    normalized = "x-anthropic-billing-header: cc_version=2.1.197.0; cc_entrypoint=cli; cch=0;"
    assert re.sub(regex, "0", old) == normalized


def test_suggested_pattern_is_anchored_on_its_neighbour_words() -> None:
    regex = suggest_pattern("session 48213 started at 99", "session 90210 started at 99")
    assert regex == r"(?<=session )(?:\d+)(?= started)"
    assert re.sub(regex, "0", "port 8080 and session 7 started") == "port 8080 and session 0 started"


def test_suggest_pattern_for_version_suffix_inside_long_text() -> None:
    tail = "\nYou are a coding agent.\n" * 200
    old = billing_line(suffix="abc") + tail
    new = billing_line(suffix="d3f") + tail
    regex = suggest_pattern(old, new)
    assert regex is not None
    assert re.sub(regex, "0", old) == re.sub(regex, "0", new)
    assert re.sub(regex, "0", old).startswith("x-anthropic-billing-header: cc_version=2.1.197.0;")


@pytest.mark.parametrize(
    ("old", "new", "must_contain"),
    [
        (
            "run id 123e4567-e89b-12d3-a456-426614174000 ok",
            "run id 0a1b2c3d-e89b-12d3-a456-426614174999 ok",
            "[0-9a-fA-F]{8}",
        ),
        ("Now: 2026-11-21T08:05:39Z.", "Now: 2026-11-21T09:15:02Z.", r"\d{4}-\d{2}-\d{2}"),
        ("session 48213 started", "session 90210 started", r"\d+"),
    ],
)
def test_suggest_pattern_recognizes_known_shapes(old: str, new: str, must_contain: str) -> None:
    regex = suggest_pattern(old, new)
    assert regex is not None and must_contain in regex
    assert re.sub(regex, "0", old) == re.sub(regex, "0", new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("same text", "same text"),
        ("Use the Bash tool.", "Prefer the Grep tool over shell commands for searching files in this repo."),
        ("alpha beta gamma", "alpha delta epsilon gamma"),
        ("x" * 10 + "a" * 200 + "y", "x" * 10 + "b" * 200 + "y"),
    ],
)
def test_suggest_pattern_declines_real_edits(old: str, new: str) -> None:
    assert suggest_pattern(old, new) is None


def test_suggest_pattern_spec_round_trips_through_the_parser() -> None:
    old, new = "token=ab12cd; rest", "token=ff00ee; rest"
    spec = suggest_pattern_spec(old, new, "messages")
    assert spec is not None
    pattern = parse_pattern_spec(spec)
    assert pattern.scopes == ("messages",)
    assert pattern.regex.sub(pattern.replacement, old) == pattern.regex.sub(pattern.replacement, new)


def test_system_role_messages_inside_anthropic_messages_are_stabilized() -> None:
    body = {
        "system": "short prompt",
        "messages": [
            {"role": "system", "content": billing_line(suffix="0ff1ce")},
            {"role": "user", "content": "hi"},
        ],
    }
    new_body = stabilize(body)
    assert new_body["messages"][0]["content"] == billing_line(suffix="x", cch="00000").replace(".x;", ";")
    assert new_body["messages"][1] is body["messages"][1]
