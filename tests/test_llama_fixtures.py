"""The llama-server fixtures start a real server that answers every API the project uses."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from support.llama import RunningServer, StartServer, long_conversation
from support.tiny_models import reference_encoding

pytestmark = pytest.mark.llama

SAMPLE_TEXT = (
    'You are an interactive CLI tool that helps users with software engineering tasks. {"type": "object", '
    '"properties": {"command": {"type": "string", "description": "The command to execute"}}}'
)


def _chat(server: RunningServer, messages: list[dict[str, str]], max_tokens: int = 8) -> dict[str, object]:
    with server.client() as client:
        resp = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": max_tokens})
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


def test_shared_server_is_healthy_with_requested_context(shared_llama_server: RunningServer) -> None:
    with shared_llama_server.client() as client:
        assert client.get("/health").json() == {"status": "ok"}
        props = client.get("/props").json()
        models = client.get("/v1/models").json()
    assert props["default_generation_settings"]["n_ctx"] == 8192
    assert props["total_slots"] == 1
    assert Path(props["model_path"]) == shared_llama_server.model_path
    assert models["data"][0]["meta"]["n_ctx_train"] == 262144


def test_server_tokenizes_like_the_reference_encoding(shared_llama_server: RunningServer) -> None:
    with shared_llama_server.client() as client:
        tokens = client.post("/tokenize", json={"content": SAMPLE_TEXT}).json()["tokens"]
    expected = reference_encoding().encode(SAMPLE_TEXT)
    assert tokens == expected
    # BPE merges matter: a byte-level vocabulary would need one token per byte.
    assert len(tokens) * 3 < len(SAMPLE_TEXT.encode())


def test_chat_completions_answer(shared_llama_server: RunningServer) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    body = _chat(shared_llama_server, messages)
    usage = body["usage"]
    assert isinstance(usage, dict)
    assert usage["prompt_tokens"] > 0
    assert 1 <= usage["completion_tokens"] <= 8
    choices = body["choices"]
    assert isinstance(choices, list) and choices[0]["message"]["role"] == "assistant"


def test_anthropic_messages_answer_streaming(shared_llama_server: RunningServer) -> None:
    request = {
        "model": "tiny",
        "max_tokens": 8,
        "stream": True,
        "system": [{"type": "text", "text": "You are a coding agent."}],
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "list files"}]}],
    }
    with shared_llama_server.client() as client, client.stream("POST", "/v1/messages", json=request) as resp:
        assert resp.status_code == 200
        events = [line.removeprefix("event: ") for line in resp.iter_lines() if line.startswith("event: ")]
    assert events[-1] == "message_stop"
    assert "message_delta" in events


def test_template_renders_tools_and_text_parts(shared_llama_server: RunningServer) -> None:
    tool = {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object"}}}
    request = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "part one"}]}],
        "tools": [tool],
    }
    with shared_llama_server.client() as client:
        prompt = client.post("/apply-template", json=request).json()["prompt"]
    assert "part one" in prompt
    assert '"Bash"' in prompt


def test_log_file_is_plain_trace_level(shared_llama_server: RunningServer) -> None:
    _chat(shared_llama_server, [{"role": "user", "content": "trace me"}], max_tokens=2)
    text = shared_llama_server.wait_for_log("new prompt, n_ctx_slot")
    assert "\x1b[" not in text
    assert re.search(r"^\d+\.\d{2}\.\d{3}\.\d{3} [IWEDT] ", text, re.MULTILINE)


def test_factory_applies_options_and_stops(llama_server: StartServer) -> None:
    server = llama_server(ctx_size=4096, parallel=2, api_key="sk-test-key")
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/props").status_code == 401
    with server.client() as client:
        props = client.get("/props").json()
    assert props["total_slots"] == 2
    assert props["default_generation_settings"]["n_ctx"] == 2048
    server.stop()
    assert server.proc.returncode is not None
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url + "/health", timeout=2)
    assert "sk-test-key" not in server.log_text()


def _checkpoint_lines(server: RunningServer) -> list[str]:
    return [line for line in server.log_text().splitlines() if "created context checkpoint" in line]


def test_swa_model_creates_and_restores_context_checkpoints(
    llama_server: StartServer, swa_model: Path
) -> None:
    server = llama_server(swa_model, extra_args=["--checkpoint-min-step", "64"])
    conversation = long_conversation(turns=4, words=150)
    _chat(server, conversation, max_tokens=4)
    server.wait_for_log("stop processing")
    lines = _checkpoint_lines(server)
    assert len(lines) >= 4, server.log_text()[-3000:]  # one per user turn at least
    assert all(re.search(r"created context checkpoint \d+ of 32 \(pos_min = \d+", line) for line in lines)
    # Branch off after turn 1: the sliding window no longer holds that point, so a checkpoint is restored.
    _chat(server, [*conversation[:5], {"role": "user", "content": "Something else"}], max_tokens=4)
    server.wait_for_log("restored context checkpoint")


def test_dense_model_creates_no_checkpoints(llama_server: StartServer) -> None:
    server = llama_server(extra_args=["--checkpoint-min-step", "64"])
    _chat(server, long_conversation(turns=4, words=150), max_tokens=4)
    server.wait_for_log("stop processing")
    assert _checkpoint_lines(server) == []


def test_replies_end_on_their_own(shared_llama_server: RunningServer) -> None:
    messages = [{"role": "user", "content": "say something"}]
    request = {"messages": messages, "max_tokens": 400, "temperature": 0}
    with shared_llama_server.client() as client:
        body = client.post("/v1/chat/completions", json=request).json()
    assert body["choices"][0]["finish_reason"] == "stop"
    assert 0 < body["usage"]["completion_tokens"] < 400
    assert "\ufffd" not in body["choices"][0]["message"]["content"]  # never half a UTF-8 sequence
