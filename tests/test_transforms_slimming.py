"""Tool-result slimming: only tool outputs change, and they keep their head, tail and meaning."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from corpus_builders import claude_code_request, cmake_gcc_log, opencode_request, pytest_output

from tui.core.transforms.pipeline import run_transforms
from tui.core.transforms.settings import TransformSettings
from tui.core.transforms.slimming import SlimLimits, fold_repeats, slim_text, strip_ansi


def slim(body: dict[str, Any], dialect: str = "anthropic", **limits: object) -> dict[str, Any]:
    new_body, _ = run_transforms(body, dialect, ["slim_results"], TransformSettings(**limits))  # type: ignore[arg-type]
    return new_body


def result_texts(body: dict[str, Any]) -> list[str]:
    out = []
    for message in body["messages"]:
        if isinstance(message["content"], list):
            for block in message["content"]:
                if block.get("type") == "tool_result":
                    content = block["content"]
                    out.append(content if isinstance(content, str) else content[0]["text"])
    return out


def test_ansi_colors_osc_links_and_progress_redraws_are_removed() -> None:
    raw = (
        "\x1b[1m\x1b[31merror:\x1b[0m bad\n"
        "\x1b]8;;https://x.test\x07link\x1b]8;;\x07 text\n"
        "10%\r50%\r100% done\r\n"
        "tail   \t"
    )
    text, notes = slim_text(raw, SlimLimits())
    assert text == "error: bad\nlink text\n100% done\ntail"
    assert notes == ["ansi", "whitespace"]


def test_strip_ansi_leaves_plain_text_as_the_same_object() -> None:
    plain = "no escapes here"
    assert strip_ansi(plain) is plain


def test_identical_runs_fold_with_exact_count() -> None:
    lines = ["start", *["same warning"] * 42, "", "", "", "end", "x", "x"]
    folded, count = fold_repeats(lines, 3)
    assert folded == [
        "start",
        "same warning",
        "[ctxbudget: line above repeated 41 more times]",
        "",
        "end",
        "x",
        "x",
    ]
    assert count == 41 + 2


def test_long_output_is_cut_to_head_and_tail_with_counts() -> None:
    lines = [f"line {i}" for i in range(1000)]
    text, notes = slim_text("\n".join(lines), SlimLimits(max_chars=10**9, max_lines=101, head_fraction=0.5))
    out = text.split("\n")
    assert len(out) == 101
    assert out[:50] == lines[:50] and out[-50:] == lines[-50:]
    removed = lines[50:950]
    assert out[50] == f"[ctxbudget: 900 lines ({sum(len(x) + 1 for x in removed)} chars) cut here]"
    assert notes == ["cut 900 lines"]


def test_one_megabyte_single_line_is_cut_by_chars() -> None:
    rng = random.Random(5)
    big = "".join(rng.choice("abcdef ✓漢😀") for _ in range(1_000_000))
    text, notes = slim_text(big, SlimLimits(max_chars=20_000))
    assert len(text) <= 20_000
    head, marker, tail = text.split("\n")
    assert big.startswith(head) and big.endswith(tail)
    assert marker == f"[ctxbudget: {len(big) - len(head) - len(tail)} chars (0 lines) cut here]"
    assert notes[-1].startswith("cut ") and notes[-1].endswith(" chars")


def test_slimming_is_idempotent_on_real_logs() -> None:
    rng = random.Random(1)
    limits = SlimLimits(max_chars=6_000, max_lines=120)
    for raw in (cmake_gcc_log(rng, 60), pytest_output(rng, 400)):
        once, _ = slim_text(raw, limits)
        twice, _ = slim_text(once, limits)
        assert once == twice


def test_build_log_keeps_its_error_line_and_loses_escapes() -> None:
    body = claude_code_request(3, ("build",))
    raw = result_texts(body)[0]
    new = result_texts(slim(body))[0]
    assert "\x1b" in raw and "\x1b" not in new
    assert new.endswith("make[2]: *** [src/CMakeFiles/core.dir/build.make:76] Error 1")
    assert len(new) < len(raw)


def test_only_tool_results_change() -> None:
    body = claude_code_request(4, ("build", "pytest", "ls"))
    snapshot = copy.deepcopy(body)
    new_body = slim(body, slim_max_lines=50)
    assert body == snapshot
    assert new_body["system"] is body["system"] and new_body["tools"] is body["tools"]
    for old, new in zip(body["messages"], new_body["messages"], strict=True):
        assert old["role"] == new["role"]
        if old["role"] == "assistant":
            assert new is old, "tool_use inputs and assistant text must not change"
            continue
        for old_block, new_block in zip(old["content"], new["content"], strict=True):
            if old_block["type"] != "tool_result":
                assert new_block == old_block
            else:
                assert new_block["tool_use_id"] == old_block["tool_use_id"]


def test_file_reads_are_never_slimmed() -> None:
    body = claude_code_request(5, ("read", "build"))
    read_before, build_before = result_texts(body)
    read_after, build_after = result_texts(slim(body, slim_max_lines=20, slim_max_chars=500))
    assert read_after == read_before
    assert "  \n" in read_after, "the Read output keeps its trailing spaces"
    assert len(build_after) <= 500


def test_skip_list_takes_globs_and_can_be_emptied() -> None:
    body = claude_code_request(5, ("read",))
    before = result_texts(body)[0]
    assert result_texts(slim(body, slim_skip_tools=[], slim_max_lines=20))[0] != before
    assert result_texts(slim(body, slim_skip_tools=["Re*"], slim_max_lines=20))[0] == before


def test_list_content_results_keep_their_other_blocks() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}
    body = {
        "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "is_error": True,
                        "content": [{"type": "text", "text": "\x1b[31mboom\x1b[0m  "}, image],
                    }
                ],
            },
        ]
    }
    block = slim(body)["messages"][1]["content"][0]
    assert block["content"] == [{"type": "text", "text": "boom"}, image]
    assert block["is_error"] is True


def test_openai_tool_messages_are_slimmed_and_user_text_is_not() -> None:
    body = opencode_request(6, ("build", "ls"))
    new_body = slim(body, "openai")
    for old, new in zip(body["messages"], new_body["messages"], strict=True):
        if old["role"] == "tool":
            assert new["tool_call_id"] == old["tool_call_id"]
            assert "\x1b" not in new["content"]
        else:
            assert new is old


def test_marker_lines_survive_json_round_trip() -> None:
    body = claude_code_request(7, ("pytest",))
    new_body = slim(body, slim_max_lines=30)
    assert json.loads(json.dumps(new_body)) == new_body
    assert "[ctxbudget: " in result_texts(new_body)[0]
