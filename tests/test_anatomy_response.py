"""Usage, timings and stop reasons from llama-server-shaped JSON and SSE responses."""

from __future__ import annotations

import gzip
import json

from builders import anthropic_sse, cc_request, exchange, oc_request, openai_sse, sse

from tui.core.anatomy.analyze import Analyzer
from tui.core.anatomy.response import parse_usage
from tui.core.tokens import TiktokenCounter


def test_anthropic_stream_usage_adds_cache_reads_to_prompt() -> None:
    usage = parse_usage(anthropic_sse(input_tokens=120, cached=4000, output_tokens=33, stop="tool_use"))
    assert usage.prompt_tokens == 4120
    assert usage.cached_tokens == 4000
    assert usage.output_tokens == 33
    assert usage.stop_reason == "tool_use"


def test_anthropic_stream_without_message_start() -> None:
    usage = parse_usage(anthropic_sse(120, 4000, 7, with_start=False), "text/event-stream")
    assert usage.prompt_tokens is None and usage.cached_tokens is None
    assert usage.output_tokens == 7
    assert usage.stop_reason == "end_turn"


def test_anthropic_json_response() -> None:
    body = {"id": "chatcmpl-1", "type": "message", "role": "assistant", "content": [],
            "stop_reason": "max_tokens",
            "usage": {"cache_read_input_tokens": 10, "input_tokens": 5, "output_tokens": 2}}  # fmt: skip
    usage = parse_usage(json.dumps(body).encode(), "application/json")
    assert (usage.prompt_tokens, usage.cached_tokens, usage.output_tokens) == (15, 10, 2)
    assert usage.stop_reason == "max_tokens"


def test_openai_stream_usage_and_timings() -> None:
    usage = parse_usage(openai_sse(prompt=900, cached=850, completion=12, finish="length"))
    assert (usage.prompt_tokens, usage.cached_tokens, usage.output_tokens) == (900, 850, 12)
    assert usage.prompt_per_second == 400.0 and usage.gen_per_second == 80.0
    assert usage.prompt_ms == 50.0 and usage.gen_ms == 100.0
    assert usage.stop_reason == "length"


def test_openai_stream_without_usage_chunk_uses_timings() -> None:
    timings = {"cache_n": 30, "prompt_n": 70, "predicted_n": 5, "prompt_ms": 1.0, "predicted_ms": 2.0,
               "prompt_per_second": 7.0, "predicted_per_second": 9.0}  # fmt: skip
    body = sse([(None, {"choices": [{"delta": {}, "finish_reason": "stop"}], "timings": timings})])
    usage = parse_usage(body + b": keep-alive\n\ndata: [DONE]\n\n")
    assert (usage.prompt_tokens, usage.cached_tokens, usage.output_tokens) == (100, 30, 5)
    assert usage.stop_reason == "stop"


def test_count_tokens_and_context_error_replies() -> None:
    assert parse_usage(b'{"input_tokens": 321}').prompt_tokens == 321
    error = {
        "error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 5002, "n_ctx": 4096}
    }
    assert parse_usage(json.dumps(error).encode()).prompt_tokens == 5002


def test_garbage_responses_give_empty_usage() -> None:
    for body in (b"", b"not json", b"data: {broken\n\n", b"[1,2]"):
        usage = parse_usage(body)
        assert usage.prompt_tokens is None and usage.output_tokens is None


def test_template_overhead_is_server_prompt_minus_parts() -> None:
    analyzer = Analyzer(TiktokenCounter())
    plain = analyzer.analyze(exchange(oc_request(), "/v1/chat/completions"))
    assert plain.anatomy is not None
    parts_sum = plain.anatomy.total_tokens
    assert plain.anatomy.categories["template_overhead"] == 0
    served = analyzer.analyze(
        exchange(oc_request(), "/v1/chat/completions", response=openai_sse(parts_sum + 40, 0, 3))
    )
    assert served.anatomy is not None
    assert served.anatomy.categories["template_overhead"] == 40
    assert served.anatomy.total_tokens == parts_sum + 40
    # A server count below the sum of parts is clamped, the raw difference stays in the parts.
    low = analyzer.analyze(
        exchange(oc_request(), "/v1/chat/completions", response=openai_sse(parts_sum - 9, 0, 3))
    )
    assert low.anatomy is not None
    assert low.anatomy.categories["template_overhead"] == 0
    assert low.anatomy.parts[-1].category == "template_overhead" and low.anatomy.parts[-1].tokens == -9


def test_gzip_response_and_error_status() -> None:
    analyzer = Analyzer(TiktokenCounter())
    result = analyzer.analyze(
        exchange(cc_request(), response=gzip.compress(anthropic_sse(100, 50, 5)),
                 response_headers={"Content-Encoding": "gzip", "Content-Type": "text/event-stream"})
    )  # fmt: skip
    assert result.usage.prompt_tokens == 150
    failed = analyzer.analyze(exchange(cc_request(), response=b'{"error": {"message": "boom"}}', status=500))
    assert failed.anatomy is not None and failed.anatomy.categories["template_overhead"] == 0
    assert failed.usage.prompt_tokens is None


def test_context_overflow_error_still_gives_template_overhead() -> None:
    analyzer = Analyzer(TiktokenCounter())
    plain = analyzer.analyze(exchange(cc_request()))
    assert plain.anatomy is not None
    n_prompt = plain.anatomy.total_tokens + 123
    error = {
        "error": {"code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": n_prompt, "n_ctx": 10}
    }
    failed = analyzer.analyze(exchange(cc_request(), response=json.dumps(error).encode(), status=400))
    assert failed.anatomy is not None and failed.anatomy.categories["template_overhead"] == 123
    assert failed.cache_break is None


def test_the_model_the_reply_names_is_kept() -> None:
    from tui.core.anatomy.response import parse_usage

    openai = (
        b'{"model":"smollm2","choices":[{"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":5,"completion_tokens":1}}'
    )
    assert parse_usage(openai).response_model == "smollm2"
    sse = (
        b'event: message_start\ndata: {"type":"message_start","message":{"model":"qwen3","usage":'
        b'{"input_tokens":3,"output_tokens":0}}}\n\n'
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
        b'"usage":{"output_tokens":2}}\n\n'
    )
    usage = parse_usage(sse, "text/event-stream")
    assert (usage.response_model, usage.stop_reason, usage.output_tokens) == ("qwen3", "end_turn", 2)
    assert parse_usage(b'{"input_tokens": 12}').response_model is None  # count_tokens names none
