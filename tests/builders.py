"""Request/response builders shaped like what Claude Code and opencode really send (see agents.md)."""

from __future__ import annotations

import base64
import json
import random
import struct
import zlib
from typing import Any

from tui.core.anatomy.exchange import Exchange

WORDS = (
    "the file tool read write edit search path result context token model server cache prompt user "
    "assistant function project directory command output error test build run check value list name "
    "schema string number object array when with from into must should never always only return"
).split()

# The 25 built-ins Claude Code 2.1.197 sent on a first request (WaitForMcpServers is there while MCP
# servers connect).
BUILTIN_TOOLS: tuple[str, ...] = (
    "Agent", "Bash", "CronCreate", "CronDelete", "CronList", "Edit", "EnterWorktree", "ExitWorktree",
    "NotebookEdit", "Read", "ReportFindings", "ScheduleWakeup", "SendMessage", "Skill", "TaskCreate",
    "TaskGet", "TaskList", "TaskOutput", "TaskStop", "TaskUpdate", "WaitForMcpServers", "WebFetch",
    "WebSearch", "Workflow", "Write",
)  # fmt: skip
MCP_HELPERS: tuple[str, ...] = ("ListMcpResourcesTool", "ReadMcpResourceTool", "ReadMcpResourceDirTool")
MCP_SERVERS: dict[str, tuple[str, ...]] = {
    "filesystem": ("read_file", "write_file", "list_directory", "search_files", "get_file_info"),
    "memory": ("create_entities", "read_graph"),
}
SESSION_ID = "5f0c6d3e-1111-4a2b-9c3d-0123456789ab"
BILLING = "x-anthropic-billing-header: cc_version=2.1.197.a3f; cc_entrypoint=sdk-cli; cch=1b2c3;"
IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."


def words(n: int, seed: int = 0) -> str:
    """n deterministic pseudo-English words."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n))


def png_bytes(width: int, height: int) -> bytes:
    """A minimal valid PNG header + IHDR (enough for size detection) of the given size."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64


def png_base64(width: int, height: int) -> str:
    """Base64 of png_bytes."""
    return base64.b64encode(png_bytes(width, height)).decode()


def tool_schema(name: str, seed: int, desc_words: int = 120) -> dict[str, Any]:
    """An Anthropic tool definition with a description and a small JSON schema."""
    return {
        "name": name,
        "description": words(desc_words, seed),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": words(12, seed + 1)},
                "limit": {"type": "number", "description": words(8, seed + 2)},
            },
            "required": ["path"],
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }


def reminder(text: str) -> str:
    """A Claude Code <system-reminder> span."""
    return f"<system-reminder>\n{text}\n</system-reminder>"


def cc_tools(
    builtins: tuple[str, ...] = BUILTIN_TOOLS,
    mcp: dict[str, tuple[str, ...]] | None = None,
    desc_words: int = 120,
) -> list[dict[str, Any]]:
    """Built-in tools, then MCP tools named mcp__<server>__<tool>, then the three MCP helper tools."""
    mcp = MCP_SERVERS if mcp is None else mcp
    tools = [tool_schema(name, i, desc_words) for i, name in enumerate(builtins)]
    for server, names in mcp.items():
        tools.extend(tool_schema(f"mcp__{server}__{n}", 100 + i, 40) for i, n in enumerate(names))
    if mcp:
        tools.extend(tool_schema(n, 200 + i, 30) for i, n in enumerate(MCP_HELPERS))
    return tools


def cc_messages(
    turns: int = 2, images: int = 1, typed: str = "Please fix the failing test in foo.py"
) -> list[Any]:
    """First user message with reminders, then (assistant thinking+text+tool_use, user tool_result) pairs."""
    first: list[dict[str, Any]] = [
        {"type": "text", "text": reminder("# claudeMd\n" + words(300, 11))},
        {"type": "text", "text": reminder("skills available: " + words(80, 12))},
        {"type": "text", "text": typed},
    ]
    for i in range(images):
        first.append({"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                  "data": png_base64(800, 600 + i)}})  # fmt: skip
    messages: list[Any] = [{"role": "user", "content": first}]
    tool_cycle = ("Read", "Bash", "mcp__filesystem__read_file")
    for t in range(turns):
        name = tool_cycle[t % len(tool_cycle)]
        tool_id = f"toolu_{t:04d}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": words(60, 300 + t), "signature": "sig"},
                    {"type": "text", "text": words(25, 400 + t)},
                    {"type": "tool_use", "id": tool_id, "name": name, "input": {"path": f"/src/f{t}.py"}},
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": [{"type": "text", "text": words(200, 500 + t)}],
                    }
                ],
            }
        )
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return messages


def cc_request(
    *,
    turns: int = 2,
    images: int = 1,
    tools: list[dict[str, Any]] | None = None,
    billing: str = BILLING,
    prompt_words: int = 600,
    messages: list[Any] | None = None,
    session_id: str = SESSION_ID,
    subagent: bool = False,
) -> dict[str, Any]:
    """A Claude-Code-shaped /v1/messages body."""
    if subagent:
        billing = billing.rstrip(";") + "; cc_is_subagent=true;"
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 32000,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "metadata": {"user_id": json.dumps({"device_id": "d" * 64, "session_id": session_id})},
        "system": [
            {"type": "text", "text": billing},
            {"type": "text", "text": IDENTITY, "cache_control": {"type": "ephemeral"}},
            {
                "type": "text",
                "text": words(prompt_words, 7) + "\ngitStatus: clean",
                "cache_control": {"type": "ephemeral"},
            },
        ],  # fmt: skip
        "tools": cc_tools() if tools is None else tools,
        "messages": cc_messages(turns, images) if messages is None else messages,
    }


CC_COMPACT_PROMPT = (
    "CRITICAL: Respond with TEXT ONLY. Do NOT call any tools.\n\n"
    "Your task is to create a detailed summary of the conversation so far, paying close attention to the"
    " user's explicit requests and your previous actions.\nThis summary should be thorough in capturing"
    " technical details, code patterns, and architectural decisions that would be essential for continuing"
    " development work without losing context.\n\nBefore providing your final summary, wrap your analysis"
    " in <analysis> tags to organize your thoughts."
)


def cc_compact_request(turns: int = 2, *, shared_prefix: bool = True) -> dict[str, Any]:
    """Claude Code's /compact summary request: the conversation plus the summary instruction as a user turn.

    Recent versions keep the main system prompt and tools (the prefix stays cached); older ones sent a
    short summariser system prompt and no tools.
    """
    body = cc_request(turns=turns)
    body["messages"].append({"role": "user", "content": [{"type": "text", "text": CC_COMPACT_PROMPT}]})
    if not shared_prefix:
        body["system"] = [
            {"type": "text", "text": BILLING},
            {"type": "text", "text": "You are a helpful AI assistant tasked with summarizing conversations."},
        ]
        body["tools"] = []
    return body


def cc_title_request(session_id: str = SESSION_ID) -> dict[str, Any]:
    """Claude Code's title generator: no tools, JSON-schema output."""
    return {
        "model": "claude-haiku-4-5",
        "max_tokens": 512,
        "system": [{"type": "text", "text": BILLING}, {"type": "text", "text": "Summarize in a title."}],
        "messages": [{"role": "user", "content": "Please fix the failing test in foo.py"}],
        "metadata": {"user_id": json.dumps({"session_id": session_id})},
        "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
    }


def oc_tools(mcp: dict[str, tuple[str, ...]] | None = None) -> list[dict[str, Any]]:
    """opencode tools: OpenAI function tools, MCP ones named <server>_<tool> without a marker."""
    mcp = MCP_SERVERS if mcp is None else mcp
    names = ["bash", "read", "edit", "write", "glob", "grep", "task", "todowrite", "webfetch"]
    names += [f"{server}_{tool}" for server, tools in mcp.items() for tool in tools]
    out = []
    for i, name in enumerate(names):
        schema = tool_schema(name, 600 + i, 60)
        out.append(
            {
                "type": "function",
                "function": {"name": name, "description": schema["description"],
                             "parameters": schema["input_schema"]},
            }
        )  # fmt: skip
    return out


def oc_request(*, turns: int = 1, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An opencode-shaped /v1/chat/completions body."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "You are opencode. " + words(400, 21)},
        {"role": "user", "content": "list the files please"},
    ]
    for t in range(turns):
        call_id = f"call_{t}"
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "reasoning_content": words(30, 700 + t),
                "tool_calls": [
                    {"id": call_id, "type": "function",
                     "function": {"name": "filesystem_list_directory", "arguments": '{"path": "/src"}'}}
                ],
            }
        )  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": call_id, "content": words(90, 800 + t)})
    return {
        "model": "qwen",
        "stream": True,
        "stream_options": {"include_usage": True},
        "tool_choice": "auto",
        "tools": oc_tools() if tools is None else tools,
        "messages": messages,
    }


OC_SESSION = "ses_e02d1dbb2ffe7omFrzr9F58QAv"
OC_HEADERS = {
    "content-type": "application/json",
    "x-session-id": OC_SESSION,
    "x-session-affinity": OC_SESSION,
}


def oc_title_request(question: str = "list the files please") -> dict[str, Any]:
    """opencode's title request: a title-generator system prompt, no tools."""
    return {
        "model": "qwen",
        "max_tokens": 32000,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {
                "role": "system",
                "content": "You are a title generator. You output ONLY a thread title. Nothing else.",
            },
            {"role": "user", "content": "Generate a title for this conversation:\n"},
            {"role": "user", "content": json.dumps(question)},
        ],
    }


def exchange(
    body: dict[str, Any] | bytes,
    path: str = "/v1/messages?beta=true",
    *,
    headers: dict[str, str] | None = None,
    response: bytes = b"",
    response_headers: dict[str, str] | None = None,
    status: int = 200,
    method: str = "POST",
) -> Exchange:
    """An Exchange as the proxy would build it."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Exchange(
        method=method,
        path=path,
        request_headers=headers if headers is not None else {"content-type": "application/json"},
        request_body=raw,
        status=status,
        response_headers=response_headers or {},
        response_body=response,
        started=1_700_000_000.0,
        ttfb_ms=10.0,
        total_ms=100.0,
    )


def sse(events: list[tuple[str | None, dict[str, Any]]]) -> bytes:
    """An SSE byte stream from (event name or None, data object) pairs."""
    out = []
    for name, data in events:
        if name:
            out.append(f"event: {name}\n")
        out.append(f"data: {json.dumps(data)}\n\n")
    return "".join(out).encode()


def anthropic_sse(
    input_tokens: int, cached: int, output_tokens: int, stop: str = "end_turn", with_start: bool = True
) -> bytes:
    """A llama-server-like Anthropic stream (optionally without message_start, as seen live)."""
    events: list[tuple[str | None, dict[str, Any]]] = []
    if with_start:
        usage = {"input_tokens": input_tokens, "cache_read_input_tokens": cached, "output_tokens": 0}
        message = {"id": "chatcmpl-1", "type": "message", "role": "assistant", "content": [], "usage": usage}
        events.append(("message_start", {"type": "message_start", "message": message}))
    events += [
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "hi"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                           "usage": {"output_tokens": output_tokens}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return sse(events)


def openai_sse(prompt: int, cached: int, completion: int, finish: str = "stop") -> bytes:
    """A llama-server-like chat stream with a usage chunk and timings on the last chunk."""
    timings = {"cache_n": cached, "prompt_n": prompt - cached, "prompt_ms": 50.0, "prompt_per_second": 400.0,
               "predicted_n": completion, "predicted_ms": 100.0, "predicted_per_second": 80.0}  # fmt: skip
    chunks: list[tuple[str | None, dict[str, Any]]] = [
        (None, {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}], "usage": None}),
        (None, {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}], "timings": timings}),
        (None, {"choices": [], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                         "total_tokens": prompt + completion,
                                         "prompt_tokens_details": {"cached_tokens": cached}}}),
    ]  # fmt: skip
    return sse(chunks) + b"data: [DONE]\n\n"
