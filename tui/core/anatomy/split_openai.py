"""Take an OpenAI Chat Completions request body apart into pieces."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tui.core.anatomy.images import size_from_data_url
from tui.core.anatomy.pieces import Piece, Split, classify_tool, dumps, split_reminders, without
from tui.core.anatomy.split_anthropic import (
    first_user_text,
    latest_user_index,
    sized_image_piece,
    user_text_pieces,
)

SYSTEM_ROLES = ("system", "developer")


def _function_tools(tools: list[Any], servers: tuple[str, ...]) -> tuple[list[Piece], tuple[str, ...]]:
    out: list[Piece] = []
    names: list[str] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            continue
        function = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        assert isinstance(function, dict)
        name = str(function.get("name", f"#{index}"))
        names.append(name)
        keep = {k: function[k] for k in ("name", "description", "parameters") if k in function}
        text = dumps(keep or tool)
        server, short = classify_tool(name, servers)
        if server is None:
            out.append(Piece("tools", f"tool {name}", text, "tools", name, tool=name))
        else:
            out.append(
                Piece("mcp_tools", f"mcp {server}/{short}", text, "tools", name, server=server, tool=name)
            )
    return out, tuple(names)


def _image_piece(part: dict[str, Any], label: str, key: str, index: int) -> Piece:
    image = part.get("image_url")
    url = str(image.get("url", "")) if isinstance(image, dict) else str(image or "")
    return sized_image_piece(size_from_data_url(url), label, key, index)


def _parts(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if isinstance(content, list):
        return [{"type": "text", "text": p} if isinstance(p, str) else p for p in content]
    return []


def _plain_text(content: Any) -> str:
    """Text of string or part-list content (non-text parts as JSON without payloads)."""
    texts: list[str] = []
    for part in _parts(content):
        if isinstance(part, dict) and part.get("type") == "text":
            texts.append(str(part.get("text", "")))
        elif isinstance(part, dict):
            texts.append(dumps(without(part, "image_url", "input_audio", "file")))
    return "\n".join(texts)


def _message_pieces(
    message: dict[str, Any], index: int, latest: bool, tool_names: dict[str, str]
) -> list[Piece]:
    role = str(message.get("role", ""))
    label = f"messages[{index}]"
    base = f"{index}:{role}"
    out: list[Piece] = []
    content = message.get("content")
    if role in SYSTEM_ROLES:
        out.append(
            Piece("system", f"{label} {role}", _plain_text(content), "messages", base, message_index=index)
        )
        return out
    if role in ("tool", "function"):
        name = tool_names.get(str(message.get("tool_call_id", "")), "") or str(
            message.get("name") or "(unknown)"
        )
        reminder, rest = split_reminders(_plain_text(content))
        out.append(
            Piece(
                "tool_results",
                f"{label} tool_result {name}",
                rest,
                "messages",
                base,
                tool=name,
                message_index=index,
            )
        )
        if reminder:
            out.append(
                Piece("reminders", f"{label} reminder", reminder, "messages", base + "r", message_index=index)
            )
        for j, part in enumerate(_parts(content)):
            if isinstance(part, dict) and part.get("type") == "image_url":
                out.append(_image_piece(part, f"{label} tool_result {name} image", f"{base}:{j}", index))
        return out
    if role == "assistant":
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out.append(
                Piece(
                    "thinking", f"{label} thinking", reasoning, "messages", base + ":t", message_index=index
                )
            )
    for j, part in enumerate(_parts(content)):
        key = f"{base}:{j}"
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            text = str(part.get("text", ""))
            if role == "user":
                out.extend(user_text_pieces(text, label, key, index, latest))
            elif text:
                out.append(
                    Piece("history", f"{label} {role} text", text, "messages", key, message_index=index)
                )
        elif kind == "image_url":
            out.append(_image_piece(part, f"{label} image", key, index))
        else:
            text = dumps(without(part, "input_audio", "file"))
            out.append(Piece("history", f"{label} {kind}", text, "messages", key, message_index=index))
    calls = message.get("tool_calls")
    if isinstance(message.get("function_call"), dict):
        calls = [{"id": "", "function": message["function_call"]}]
    for j, call in enumerate(calls if isinstance(calls, list) else []):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        name = str(function.get("name", ""))
        tool_names[str(call.get("id", ""))] = name
        arguments = function.get("arguments", "")
        text = name + " " + (arguments if isinstance(arguments, str) else dumps(arguments))
        out.append(
            Piece(
                "tool_calls",
                f"{label} tool_use {name}",
                text,
                "messages",
                f"{base}:c{j}",
                tool=name,
                message_index=index,
            )
        )
    return out


def split_openai(body: dict[str, Any], servers: tuple[str, ...]) -> Split:
    """Pieces in prompt order (system messages first, tools, then the conversation)."""
    split = Split("openai", model=str(body.get("model", "")), stream=bool(body.get("stream", False)))
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ValueError("unknown request shape: no messages list")
    tools = body.get("tools") if isinstance(body.get("tools"), list) else body.get("functions")
    tool_list, split.tool_names = _function_tools(tools if isinstance(tools, list) else [], servers)
    split.message_count = len(messages)
    latest = latest_user_index(messages)
    tool_names: dict[str, str] = {}
    conversation: list[Piece] = []
    first_user: int | None = None
    system_texts: list[str] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        pieces = _message_pieces(message, index, index == latest, tool_names)
        role = message.get("role")
        # Leading system messages come before the tool block in the prompt; later ones stay in place.
        if role in SYSTEM_ROLES and not conversation:
            split.pieces.extend(replace(p, section="system") for p in pieces)
            system_texts.extend(p.text for p in pieces)
        elif role in SYSTEM_ROLES:
            # System messages inside the conversation are harness notices, not the system prompt.
            conversation.extend(replace(p, category="reminders") for p in pieces)
        else:
            conversation.extend(pieces)
        if first_user is None and role == "user":
            first_user = index
    split.pieces.extend(tool_list)
    split.pieces.extend(conversation)
    split.system_text = "\n".join(system_texts)
    split.first_user = first_user_text(conversation, first_user)
    response_format = body.get("response_format")
    split.json_output = isinstance(response_format, dict) and response_format.get("type") in (
        "json_schema",
        "json_object",
    )
    return split
