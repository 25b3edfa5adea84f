"""Tool description trimming: first paragraph only, names and schemas byte-identical, opt-outs honoured."""

from __future__ import annotations

import copy
import json
from typing import Any

from corpus_builders import claude_code_request, opencode_request

from tui.core.transforms.pipeline import run_transforms
from tui.core.transforms.settings import TransformSettings
from tui.core.transforms.trim_tools import first_paragraph


def trim(
    body: dict[str, Any], dialect: str = "anthropic", **options: object
) -> tuple[dict[str, Any], list[str]]:
    new_body, reports = run_transforms(body, dialect, ["trim_descriptions"], TransformSettings(**options))  # type: ignore[arg-type]
    return new_body, reports[0].details


def test_first_paragraph_rules() -> None:
    assert first_paragraph("One line.\n\nSecond.") == "One line."
    assert first_paragraph("\n\n  \nLead text\nstill lead.  \n \t\nMore.") == "Lead text\nstill lead."
    assert first_paragraph("no breaks") == "no breaks"


def test_long_descriptions_shrink_and_schemas_stay_byte_identical() -> None:
    body = claude_code_request(1, ())
    snapshot = copy.deepcopy(body)
    new_body, details = trim(body)
    assert body == snapshot
    assert len(details) == len([t for t in body["tools"] if len(t["description"]) > 400])
    for old, new in zip(body["tools"], new_body["tools"], strict=True):
        assert new["name"] == old["name"]
        assert json.dumps(new["input_schema"]) == json.dumps(old["input_schema"])
        assert old["description"].startswith(new["description"])
        assert "\n\n" not in new["description"] or new is old
    assert new_body["system"] is body["system"] and new_body["messages"] is body["messages"]


def test_short_descriptions_and_opted_out_tools_are_kept() -> None:
    body = claude_code_request(1, ())
    new_body, details = trim(body, trim_keep_tools=["Bash", "mcp__filesystem__*"], trim_min_chars=1500)
    by_name = {t["name"]: (t, n) for t, n in zip(body["tools"], new_body["tools"], strict=True)}
    assert by_name["Bash"][1] is by_name["Bash"][0]
    assert by_name["mcp__filesystem__read_file"][1] is by_name["mcp__filesystem__read_file"][0]
    for old, new in by_name.values():
        if len(old["description"]) <= 1500:
            assert new is old
    assert all(not d.startswith(("Bash:", "mcp__")) for d in details)


def test_openai_function_descriptions_are_trimmed() -> None:
    body = opencode_request(2, ())
    new_body, details = trim(body, "openai")
    assert details
    for old, new in zip(body["tools"], new_body["tools"], strict=True):
        assert new["type"] == "function"
        assert new["function"]["name"] == old["function"]["name"]
        assert new["function"]["parameters"] is old["function"]["parameters"]
    assert new_body["messages"] is body["messages"]


def test_server_tools_without_description_pass_untouched() -> None:
    body = {"tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}], "messages": []}
    new_body, details = trim(body, trim_min_chars=0)
    assert new_body is body and details == []
