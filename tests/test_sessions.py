"""Session ids and request kinds: side requests (title, sub-agent, count_tokens) keep out of timelines."""

from __future__ import annotations

import json

from builders import (
    OC_HEADERS,
    OC_SESSION,
    SESSION_ID,
    cc_compact_request,
    cc_request,
    cc_title_request,
    exchange,
    oc_request,
    oc_title_request,
    words,
)

from tui.core.anatomy.analyze import Analyzer
from tui.core.tokens import TiktokenCounter


def analyzer() -> Analyzer:
    return Analyzer(TiktokenCounter(), ("filesystem", "memory"))


def test_session_from_header_wins_over_metadata() -> None:
    result = analyzer().analyze(exchange(cc_request(), headers={"X-Claude-Code-Session-Id": "abc-123"}))
    assert result.session_id == "abc-123"
    assert result.kind == "main"


def test_session_from_metadata_user_id_json() -> None:
    result = analyzer().analyze(exchange(cc_request(session_id="11111111-2222")))
    assert result.session_id == "11111111-2222"


def test_session_from_legacy_user_id_string() -> None:
    body = cc_request()
    body["metadata"]["user_id"] = "user_abc_account__session_0a1b2c3d-aaaa-bbbb"
    assert analyzer().analyze(exchange(body)).session_id == "0a1b2c3d-aaaa-bbbb"


def test_hash_session_is_stable_across_turns_and_differs_between_conversations() -> None:
    a = analyzer()
    first = a.analyze(exchange(oc_request(turns=0), "/v1/chat/completions"))
    later = a.analyze(exchange(oc_request(turns=3), "/v1/chat/completions"))
    assert first.session_id.startswith("h-") and first.session_id == later.session_id
    other = oc_request(turns=0)
    other["messages"][1]["content"] = "a different question"
    assert a.analyze(exchange(other, "/v1/chat/completions")).session_id != first.session_id


def test_title_request_kinds() -> None:
    a = analyzer()
    assert a.analyze(exchange(cc_title_request())).kind == "title"
    opencode_title = {
        "model": "qwen",
        "messages": [
            {"role": "system", "content": "You are a title generator. You output ONLY a thread title."},
            {"role": "user", "content": "list the files please"},
        ],
    }
    assert a.analyze(exchange(opencode_title, "/v1/chat/completions")).kind == "title"


def test_subagent_by_billing_flag_and_by_short_system_prompt() -> None:
    a = analyzer()
    assert a.analyze(exchange(cc_request())).kind == "main"
    assert a.analyze(exchange(cc_request(subagent=True, prompt_words=100))).kind == "subagent"
    short = cc_request(prompt_words=50)
    short["system"][2]["text"] = "You are a file search specialist. " + words(50, 99)
    assert a.analyze(exchange(short)).kind == "subagent"
    assert a.analyze(exchange(cc_request(turns=3))).kind == "main"


def test_count_tokens_kind() -> None:
    a = analyzer()
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": cc_request()["tools"][:3],
            "metadata": {"user_id": json.dumps({"session_id": SESSION_ID})}}  # fmt: skip
    result = a.analyze(
        exchange(body, "/v1/messages/count_tokens?beta=true", response=b'{"input_tokens": 99}')
    )
    assert result.kind == "count_tokens" and result.session_id == SESSION_ID
    assert result.usage.prompt_tokens == 99
    assert result.cache_break is None


def test_side_requests_do_not_break_the_main_timeline() -> None:
    a = analyzer()
    assert a.analyze(exchange(cc_request(turns=1))).cache_break is None
    for side in (cc_title_request(), cc_request(subagent=True, prompt_words=80)):
        a.analyze(exchange(side))
    # the next main turn only appends to the previous main turn: no break
    assert a.analyze(exchange(cc_request(turns=2))).cache_break is None


def test_claude_code_compact_request_is_its_own_kind_and_keeps_out_of_the_main_timeline() -> None:
    a = analyzer()
    assert a.analyze(exchange(cc_request(turns=2))).kind == "main"
    for shared in (True, False):
        result = a.analyze(exchange(cc_compact_request(turns=2, shared_prefix=shared)))
        assert (result.kind, result.session_id, result.cache_break) == ("compact", SESSION_ID, None)
    after = a.analyze(exchange(cc_request(turns=3)))
    assert after.kind == "main" and after.cache_break is None


def test_opencode_summariser_request_is_compact() -> None:
    a = analyzer()
    path = "/v1/chat/completions"
    assert a.analyze(exchange(oc_request(turns=2), path, headers=OC_HEADERS)).kind == "main"
    body = oc_request(turns=2)
    body["messages"][0]["content"] = "You are a helpful AI assistant tasked with summarizing conversations."
    ask = "Provide a detailed prompt for continuing our conversation above."
    body["messages"].append({"role": "user", "content": ask})
    result = a.analyze(exchange(body, path, headers=OC_HEADERS))
    assert (result.kind, result.session_id) == ("compact", OC_SESSION)


def test_asking_for_a_summary_in_passing_stays_main() -> None:
    a = analyzer()
    a.analyze(exchange(cc_request(turns=1)))
    body = cc_request(turns=1)
    body["messages"].append({"role": "user", "content": "summarize what you changed in foo.py"})
    assert a.analyze(exchange(body)).kind == "main"


def test_no_tools_request_in_a_tool_session_is_other() -> None:
    a = analyzer()
    a.analyze(exchange(cc_request()))
    body = cc_request(tools=[])
    assert a.analyze(exchange(body)).kind == "other"


def test_opencode_session_header_groups_title_and_main() -> None:
    a = analyzer()
    title = a.analyze(exchange(oc_title_request(), "/v1/chat/completions", headers=OC_HEADERS))
    first = a.analyze(exchange(oc_request(turns=0), "/v1/chat/completions", headers=OC_HEADERS))
    later = a.analyze(exchange(oc_request(turns=2), "/v1/chat/completions", headers=OC_HEADERS))
    assert (title.kind, first.kind, later.kind) == ("title", "main", "main")
    assert title.session_id == first.session_id == later.session_id == OC_SESSION
    assert later.cache_break is None


def test_a_request_without_tools_asking_only_for_effort_is_main_not_a_title() -> None:
    """Claude Code 2.1.197 sends output_config {"effort": "high"} on main requests too."""
    body = cc_request()
    body.pop("tools", None)
    body["output_config"] = {"effort": "high"}
    assert analyzer().analyze(exchange(body)).kind == "main"
    assert analyzer().analyze(exchange(cc_title_request())).kind == "title"
