"""Anatomy against a real llama-server: exact part counts reconcile with the server's own prompt count."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from builders import cc_request, cc_tools, oc_request, oc_tools
from support.llama import RunningServer

from tui.core.anatomy.analyze import AnalysisResult, Analyzer
from tui.core.anatomy.exchange import Exchange
from tui.core.tokens import ServerCounter, TiktokenCounter, make_counter

pytestmark = pytest.mark.llama


def forward(server: RunningServer, path: str, body: dict[str, Any]) -> Exchange:
    """Send a request to the server and record it the way the proxy would."""
    with httpx.Client(base_url=server.url, timeout=120) as client:
        reply = client.post(path, json=body)
    assert reply.status_code == 200, reply.text
    return Exchange(
        method="POST", path=path, request_headers={"content-type": "application/json"},
        request_body=reply.request.content, status=reply.status_code,
        response_headers=dict(reply.headers), response_body=reply.content,
    )  # fmt: skip


def parts_sum(result: AnalysisResult) -> int:
    assert result.anatomy is not None
    return sum(p.tokens for p in result.anatomy.parts if p.category != "template_overhead")


def small_oc() -> dict[str, Any]:
    body = oc_request(turns=2, tools=oc_tools(mcp={"filesystem": ("read_file", "list_directory")}))
    body.update(stream=False, max_tokens=4)
    body.pop("stream_options")
    return body


def test_chat_request_parts_plus_overhead_equal_server_prompt(shared_llama_server: RunningServer) -> None:
    counter = ServerCounter(shared_llama_server.url)
    analyzer = Analyzer(counter, ("filesystem",))
    result = analyzer.analyze(forward(shared_llama_server, "/v1/chat/completions", small_oc()))
    counter.close()
    anatomy = result.anatomy
    assert result.unparsed_reason is None and anatomy is not None
    assert anatomy.counter == "llama-server" and anatomy.exact
    prompt = result.usage.prompt_tokens
    assert prompt is not None and prompt > 0
    overhead = anatomy.categories["template_overhead"]
    assert parts_sum(result) + overhead == prompt == anatomy.total_tokens
    # the template adds role markers and tool framing, never removes content
    assert 0 < overhead < prompt * 0.25
    assert anatomy.mcp_servers["filesystem"]["tools"] == 2


def test_each_part_is_what_tokenize_says(shared_llama_server: RunningServer) -> None:
    counter = ServerCounter(shared_llama_server.url)
    body = small_oc()
    result = Analyzer(counter).analyze(forward(shared_llama_server, "/v1/chat/completions", body))
    counter.close()
    assert result.anatomy is not None
    system = body["messages"][0]["content"]
    with shared_llama_server.client() as client:
        tokens = client.post("/tokenize", json={"content": system, "add_special": False}).json()["tokens"]
    assert result.anatomy.categories["system"] == len(tokens)


def test_streaming_chat_usage_and_timings(shared_llama_server: RunningServer) -> None:
    body = oc_request(turns=1, tools=[])
    body["max_tokens"] = 3
    result = Analyzer(make_counter("auto", shared_llama_server.url)).analyze(
        forward(shared_llama_server, "/v1/chat/completions", body)
    )
    assert result.stream and result.usage.prompt_tokens is not None
    assert result.usage.output_tokens is not None and 1 <= result.usage.output_tokens <= 3
    assert result.usage.prompt_per_second is not None and result.usage.stop_reason in ("length", "stop")
    assert result.anatomy is not None and result.anatomy.counter == "llama-server"
    assert result.anatomy.total_tokens == result.usage.prompt_tokens


def test_anthropic_request_reconciles(shared_llama_server: RunningServer) -> None:
    body = cc_request(
        turns=1, images=0, prompt_words=200, tools=cc_tools(builtins=("Bash", "Read"), desc_words=40)
    )
    body.update(stream=False, max_tokens=4)
    body.pop("thinking")
    analyzer = Analyzer(ServerCounter(shared_llama_server.url))
    first = analyzer.analyze(forward(shared_llama_server, "/v1/messages?beta=true", body))
    assert first.anatomy is not None and first.usage.prompt_tokens is not None
    assert first.anatomy.categories["template_overhead"] > 0
    assert first.anatomy.total_tokens == first.usage.prompt_tokens
    assert first.usage.stop_reason is not None
    # the next turn in the same session reuses the server cache: reported, and no cache break
    body2 = cc_request(turns=2, images=0, prompt_words=200, tools=body["tools"])
    body2.update(stream=False, max_tokens=4)
    body2.pop("thinking")
    second = analyzer.analyze(forward(shared_llama_server, "/v1/messages?beta=true", body2))
    assert second.session_id == first.session_id and second.cache_break is None
    assert second.usage.cached_tokens is not None and second.usage.cached_tokens > 0


def test_count_tokens_endpoint(shared_llama_server: RunningServer) -> None:
    body = cc_request(turns=1, images=0, prompt_words=100, tools=cc_tools(builtins=("Bash",), desc_words=20))
    result = Analyzer(TiktokenCounter()).analyze(
        forward(shared_llama_server, "/v1/messages/count_tokens", body)
    )
    assert result.kind == "count_tokens"
    assert result.usage.prompt_tokens is not None and result.usage.prompt_tokens > 0


def test_anthropic_stream_accounting(shared_llama_server: RunningServer) -> None:
    body = cc_request(turns=1, images=0, prompt_words=100, tools=cc_tools(builtins=("Bash",), desc_words=20))
    body["max_tokens"] = 3
    result = Analyzer(TiktokenCounter()).analyze(forward(shared_llama_server, "/v1/messages?beta=true", body))
    assert result.stream and result.dialect == "anthropic" and result.kind == "main"
    assert result.usage.output_tokens is not None and 1 <= result.usage.output_tokens <= 3
    assert result.usage.stop_reason in ("max_tokens", "end_turn")
    # message_start (with the prompt usage) is missing when the first token is an incomplete UTF-8 sequence
    if result.usage.prompt_tokens is not None:
        assert result.anatomy is not None
        assert result.anatomy.total_tokens >= result.usage.prompt_tokens
