"""The transform pipeline over the corpus: order, reports, token savings, prefix warnings, diffs."""

from __future__ import annotations

import copy
import random
import re
from typing import Any

import httpx
import pytest
from corpus_builders import (
    CorpusRequest,
    billing_line,
    claude_code_request,
    cmake_gcc_log,
    corpus,
    long_user_prompt,
    pytest_output,
)

from tui.core.tokens import ServerCounter, TiktokenCounter
from tui.core.transforms.body_slots import layout_entries
from tui.core.transforms.model import TransformResult
from tui.core.transforms.pipeline import (
    TransformPipeline,
    changes_prefix,
    measure_savings,
    run_transforms,
    unified_diff_preview,
)
from tui.core.transforms.registry import TRANSFORM_ORDER, validate_settings
from tui.core.transforms.settings import TransformSettings

CORPUS = corpus()


def shape(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for message in body["messages"]:
        content = message.get("content")
        kinds = tuple(
            (b.get("type"), b.get("id"), b.get("tool_use_id"), b.get("name"))
            for b in (content if isinstance(content, list) else [])
        )
        calls = tuple(c["id"] for c in message.get("tool_calls", []))
        out.append((message["role"], type(content).__name__, kinds, calls, message.get("tool_call_id")))
    return out


@pytest.mark.parametrize("request_", CORPUS, ids=[r.name for r in CORPUS])
def test_all_transforms_keep_the_request_shape(request_: CorpusRequest) -> None:
    snapshot = copy.deepcopy(request_.body)
    new_body, reports = run_transforms(request_.body, request_.dialect, list(TRANSFORM_ORDER))
    assert request_.body == snapshot
    assert [r.name for r in reports] == list(TRANSFORM_ORDER)
    assert shape(new_body) == shape(request_.body)
    assert set(new_body) == set(request_.body)
    assert [t.get("name") or t["function"]["name"] for t in new_body["tools"]] == [
        t.get("name") or t["function"]["name"] for t in request_.body["tools"]
    ]
    has_results = any(
        m["role"] in ("user", "tool") and "tool" in str(m) for m in request_.body["messages"][1:]
    )
    expected = {
        "stabilize": request_.dialect == "anthropic",
        "trim_descriptions": True,
        "slim_results": has_results,
        "compress_prose": True,
    }
    assert {r.name: r.changed for r in reports} == expected


def test_names_run_in_fixed_order_and_unknown_names_fail() -> None:
    body = CORPUS[0].body
    _, reports = run_transforms(body, "anthropic", ["compress_prose", "stabilize"])
    assert [r.name for r in reports] == ["stabilize", "compress_prose"]
    with pytest.raises(ValueError, match="unknown transforms \\['shrink'\\]"):
        run_transforms(body, "anthropic", ["shrink"])


def test_default_settings_enable_only_the_stabilizer() -> None:
    pipeline = TransformPipeline(TransformSettings())
    assert pipeline.enabled == ["stabilize"]
    assert [t.default_enabled for t in pipeline.transforms.values()] == [True, False, False, False]


def test_unknown_dialects_and_odd_bodies_pass_untouched() -> None:
    body = CORPUS[0].body
    new_body, reports = run_transforms(body, "gemini", list(TRANSFORM_ORDER))
    assert new_body is body and not any(r.changed for r in reports)
    for odd in ({}, {"messages": "hi"}, {"messages": [None, 3, {"role": 5}]}, {"system": 7, "tools": "x"}):
        assert run_transforms(odd, "anthropic", list(TRANSFORM_ORDER))[0] is odd


def test_a_failing_transform_is_reported_and_skipped() -> None:
    class Broken:
        name = "slim_results"
        default_enabled = False
        description = "raises"

        def apply(self, body: dict[str, Any], dialect: str) -> TransformResult:
            raise RuntimeError("boom")

    pipeline = TransformPipeline(TransformSettings(enabled=["stabilize", "slim_results"]))
    pipeline.transforms["slim_results"] = Broken()
    new_body, reports = pipeline.run(CORPUS[0].body, "anthropic")
    assert reports[0].changed and new_body["system"][0] != CORPUS[0].body["system"][0]
    assert reports[1].changed is False and "RuntimeError('boom')" in reports[1].details[0]


def test_measure_savings_with_tiktoken_counts_every_stage() -> None:
    counter = TiktokenCounter()
    body = CORPUS[0].body
    final, savings = measure_savings(body, "anthropic", counter, list(TRANSFORM_ORDER))
    assert [s.name for s in savings] == list(TRANSFORM_ORDER)
    for before, after in zip(savings, savings[1:], strict=False):
        assert after.tokens_before == before.tokens_after
    whole = sum(counter.count_many([t for _, t in _entries(body)]))
    assert savings[0].tokens_before == whole
    assert savings[-1].tokens_after == sum(counter.count_many([t for _, t in _entries(final)]))
    by_name = {s.name: s for s in savings}
    assert by_name["trim_descriptions"].saved > 1000
    assert by_name["slim_results"].saved > 1000
    assert by_name["compress_prose"].saved > 10
    assert abs(by_name["stabilize"].saved) < 10


def _entries(body: dict[str, Any]) -> list[tuple[str, str]]:
    return layout_entries(body)


def test_changes_prefix_says_where_and_whether_it_reprocesses() -> None:
    body = claude_code_request(1, ("build", "pytest"))
    stabilized, _ = run_transforms(body, "anthropic", ["stabilize"])
    change = changes_prefix(body, stabilized)
    assert change is not None and change.where == "system[0]" and change.reprocesses
    assert change.unchanged_chars == 0

    assert changes_prefix(body, body) is None

    prose, _ = run_transforms(claude_code_request(1, ()), "anthropic", ["compress_prose"])
    first_turn = changes_prefix(claude_code_request(1, ()), prose)
    assert (
        first_turn is not None and first_turn.where.startswith("messages[0]") and not first_turn.reprocesses
    )

    longer = copy.deepcopy(body)
    longer["messages"].append({"role": "assistant", "content": "done"})
    appended = changes_prefix(body, longer)
    assert appended is not None and not appended.reprocesses and appended.where == "messages[5] assistant"


def test_unified_diff_preview_shows_changed_lines_only() -> None:
    body = claude_code_request(1, ("build",))
    new_body, _ = run_transforms(body, "anthropic", ["stabilize", "slim_results"])
    diff = unified_diff_preview(body, new_body)
    lines = diff.split("\n")
    assert lines[:2] == ["--- original", "+++ transformed"]
    assert "-" + billing_line() in lines
    assert "+x-anthropic-billing-header: cc_version=2.1.197; cc_entrypoint=cli; cch=00000;" in lines
    assert all("\x1b" not in line for line in lines if line.startswith("+"))
    assert unified_diff_preview(body, body) == ""
    short = unified_diff_preview(body, new_body, max_lines=5)
    assert len(short.split("\n")) == 6 and short.endswith("more diff lines")


@pytest.mark.llama
def test_savings_counted_by_the_real_server(shared_llama_server: Any) -> None:
    counter = ServerCounter(shared_llama_server.url)
    _, savings = measure_savings(CORPUS[3].body, "anthropic", counter, ["slim_results", "trim_descriptions"])
    assert all(s.saved > 0 for s in savings)


@pytest.mark.llama
def test_stabilized_billing_line_lets_the_server_reuse_its_cache(shared_llama_server: Any) -> None:
    """Two Claude Code-like requests differing only in the billing hash: the server re-uses the prefix."""
    system_tail = "\n".join(f"Rule {i}: keep the code tidy and tested." for i in range(150))

    def chat(suffix: str, cch: str, stabilize: bool) -> tuple[int, int]:
        body = {
            "system": [
                {"type": "text", "text": billing_line(suffix=suffix, cch=cch)},
                {"type": "text", "text": system_tail},
            ],
            "messages": [{"role": "user", "content": "hi"}],
        }
        if stabilize:
            body, _ = run_transforms(body, "anthropic", ["stabilize"])
        system = "\n".join(b["text"] for b in body["system"])
        reply = httpx.post(
            f"{shared_llama_server.url}/v1/chat/completions",
            json={
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": "hi"}],
                "max_tokens": 1,
                "cache_prompt": True,
            },
            timeout=120,
        )
        reply.raise_for_status()
        timings = reply.json()["timings"]
        return int(timings["cache_n"]), int(timings["prompt_n"])

    chat("aaa", "11111", False)
    cached_raw, processed_raw = chat("bbb", "22222", False)
    chat("ccc", "33333", True)
    cached_stable, processed_stable = chat("ddd", "44444", True)
    assert processed_raw > 100, "without the stabilizer nearly the whole prompt is processed again"
    assert processed_stable < 10 < cached_stable
    assert cached_stable > cached_raw + 100


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"enabled": ["stabilize", "zip"]}, "unknown transforms ['zip']"),
        ({"stabilizer_builtins": ["cc_billing_hash"]}, "unknown stabilizer_builtins"),
        ({"stabilizer_patterns": ["oops"]}, "stabilizer_patterns[0]"),
        ({"slim_max_chars": 10}, "slim_max_chars: 10 is out of range"),
        ({"slim_max_lines": 1}, "slim_max_lines"),
        ({"slim_head_fraction": 1.5}, "slim_head_fraction"),
        ({"slim_min_repeat": 1}, "slim_min_repeat"),
        ({"trim_min_chars": -1}, "trim_min_chars"),
    ],
)
def test_validate_settings_names_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        validate_settings(TransformSettings(**changes))
    assert str(caught.value).startswith("[transforms] ")


def test_default_settings_are_valid() -> None:
    validate_settings(TransformSettings())


@pytest.mark.llama
def test_transformed_requests_are_accepted_and_cheaper_on_the_real_server(shared_llama_server: Any) -> None:
    """The real llama-server accepts every transformed Anthropic body and counts fewer input tokens."""
    rng = random.Random(11)
    tool = {
        "name": "Bash",
        "description": "Run a shell command.\n\n" + "Long usage notes about quoting and timeouts. " * 30,
        "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    }
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 1,
        "system": [
            {"type": "text", "text": billing_line()},
            {"type": "text", "text": "You are a coding agent."},
        ],
        "tools": [tool],
        "messages": [
            {"role": "user", "content": long_user_prompt(rng, 1)},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "make"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": cmake_gcc_log(rng, 12)},
                    {"type": "text", "text": "Please just fix the warnings."},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_2", "name": "Bash", "input": {"command": "pytest"}}
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": pytest_output(rng, 40)}
                ],
            },
        ],
    }
    settings = TransformSettings(slim_max_lines=30, trim_min_chars=100)
    new_body, reports = run_transforms(body, "anthropic", list(TRANSFORM_ORDER), settings)
    assert all(r.changed for r in reports)

    def input_tokens(payload: dict[str, Any]) -> int:
        reply = httpx.post(f"{shared_llama_server.url}/v1/messages/count_tokens", json=payload, timeout=60)
        reply.raise_for_status()
        return int(reply.json()["input_tokens"])

    before, after = input_tokens(body), input_tokens(new_body)
    assert after < before * 0.8
    reply = httpx.post(f"{shared_llama_server.url}/v1/messages", json=new_body, timeout=120)
    assert reply.status_code == 200, reply.text
    assert reply.json()["type"] == "message"
