"""Take an Anthropic Messages request body apart into pieces."""

from __future__ import annotations

from typing import Any

from tui.core.anatomy.images import image_tokens, size_from_base64
from tui.core.anatomy.pieces import (
    BILLING_PREFIX,
    Piece,
    Split,
    classify_tool,
    dumps,
    parse_billing,
    split_reminders,
    without,
)


def tool_schema_text(tool: dict[str, Any], schema_key: str) -> str:
    """What a tool schema costs: its name, description and parameter schema as JSON."""
    if schema_key in tool or "description" in tool:
        keep = {k: tool[k] for k in ("name", "description", schema_key) if k in tool}
        return dumps(keep)
    return dumps(without(tool, "cache_control", "defer_loading"))


def tool_pieces(tools: list[Any], schema_key: str, servers: tuple[str, ...]) -> list[Piece]:
    """One piece per tool schema, built-in or MCP (per server)."""
    out: list[Piece] = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict):
            continue
        name = str(tool.get("name", f"#{index}"))
        server, short = classify_tool(name, servers)
        text = tool_schema_text(tool, schema_key)
        if server is None:
            out.append(Piece("tools", f"tool {name}", text, "tools", name, tool=name))
        else:
            out.append(
                Piece("mcp_tools", f"mcp {server}/{short}", text, "tools", name, server=server, tool=name)
            )
    return out


def image_piece(source: Any, label: str, key: str, index: int | None) -> Piece:
    """An image block with its estimated tokens (never tokenized: base64 is not what the model sees)."""
    size = None
    if isinstance(source, dict) and source.get("type") == "base64":
        size = size_from_base64(str(source.get("data", "")))
    return sized_image_piece(size, label, key, index)


def sized_image_piece(size: tuple[int, int] | None, label: str, key: str, index: int | None) -> Piece:
    """An image part of known (or unknown) pixel size, in either dialect."""
    detail = f"{size[0]}x{size[1]}" if size else "size unknown"
    return Piece(
        "images",
        f"{label} ({detail})",
        "",
        "messages",
        key,
        message_index=index,
        fixed_tokens=image_tokens(size),
    )


def user_text_pieces(text: str, label: str, key: str, index: int, latest: bool) -> list[Piece]:
    """A user text split into reminder spans and what the human typed."""
    out: list[Piece] = []
    reminder, rest = split_reminders(text)
    if reminder:
        out.append(
            Piece("reminders", f"{label} reminder", reminder, "messages", key + "r", message_index=index)
        )
    if rest:
        category = "latest_user" if latest else "history"
        out.append(Piece(category, f"{label} user text", rest, "messages", key, message_index=index))
    return out


def typed_text(content: Any) -> bool:
    """Whether a user message holds anything the human typed (not reminders, not tool results)."""
    if isinstance(content, str):
        return bool(split_reminders(content)[1].strip())
    if isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                if split_reminders(str(block.get("text", "")))[1].strip():
                    return True
    return False


def latest_user_index(messages: list[Any]) -> int | None:
    """Index of the newest user message with typed text: its text is the latest user turn."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user" and typed_text(message.get("content")):
            return index
    return None


def _result_pieces(block: dict[str, Any], name: str, label: str, key: str, index: int) -> list[Piece]:
    content = block.get("content", "")
    texts: list[str] = []
    out: list[Piece] = []
    items = content if isinstance(content, list) else [content]
    for j, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict) and item.get("type") == "text":
            texts.append(str(item.get("text", "")))
        elif isinstance(item, dict) and item.get("type") == "image":
            out.append(image_piece(item.get("source"), f"{label} image", f"{key}i{j}", index))
        elif isinstance(item, dict) and item.get("type") == "tool_reference":
            texts.append(str(item.get("tool_name", "")))
        elif item is not None:
            texts.append(dumps(item))
    reminder, rest = split_reminders("\n".join(texts))
    if reminder:
        out.insert(
            0, Piece("reminders", f"{label} reminder", reminder, "messages", key + "r", message_index=index)
        )
    out.insert(0, Piece("tool_results", label, rest, "messages", key, tool=name, message_index=index))
    return out


def message_pieces(
    message: dict[str, Any], index: int, latest: bool, tool_names: dict[str, str]
) -> list[Piece]:
    """Pieces of one message; records tool_use ids so results can be named."""
    role = str(message.get("role", ""))
    content = message.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
    if not isinstance(blocks, list):
        return []
    out: list[Piece] = []
    for j, block in enumerate(blocks):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        key = f"{index}:{role}:{j}"
        label = f"messages[{index}]"
        if role == "system":
            # Harness content inside the conversation (agent lists, notices): not the system prompt.
            text = str(block.get("text", "")) if kind == "text" else dumps(without(block, "cache_control"))
            out.append(Piece("reminders", f"{label} system", text, "messages", key, message_index=index))
        elif kind == "text":
            text = str(block.get("text", ""))
            if role == "user":
                out.extend(user_text_pieces(text, label, key, index, latest))
            else:
                out.append(
                    Piece("history", f"{label} {role} text", text, "messages", key, message_index=index)
                )
        elif kind in ("thinking", "redacted_thinking"):
            text = str(block.get("thinking", "") if kind == "thinking" else block.get("data", ""))
            out.append(Piece("thinking", f"{label} thinking", text, "messages", key, message_index=index))
        elif kind in ("tool_use", "server_tool_use"):
            name = str(block.get("name", ""))
            tool_names[str(block.get("id", ""))] = name
            text = name + " " + dumps(block.get("input", {}))
            out.append(
                Piece(
                    "tool_calls",
                    f"{label} tool_use {name}",
                    text,
                    "messages",
                    key,
                    tool=name,
                    message_index=index,
                )
            )
        elif kind == "tool_result":
            name = tool_names.get(str(block.get("tool_use_id", "")), "(unknown)")
            out.extend(_result_pieces(block, name, f"{label} tool_result {name}", key, index))
        elif kind == "image":
            out.append(image_piece(block.get("source"), f"{label} image", key, index))
        else:
            # documents, search results, unknown blocks: their JSON without base64 payloads
            source = block.get("source")
            if isinstance(source, dict) and source.get("type") == "base64":
                block = {**block, "source": without(source, "data")}
            text = dumps(without(block, "cache_control"))
            out.append(Piece("history", f"{label} {kind}", text, "messages", key, message_index=index))
    return out


def first_user_text(pieces: list[Piece], index: int | None) -> str:
    """The first user message's texts (stable across turns: no cache_control markers)."""
    if index is None:
        return ""
    return "\n".join(p.text for p in pieces if p.message_index == index)


def split_anthropic(body: dict[str, Any], servers: tuple[str, ...]) -> Split:
    """Pieces in prompt order (system, tools, messages) of a /v1/messages body."""
    split = Split("anthropic", model=str(body.get("model", "")), stream=bool(body.get("stream", False)))
    system = body.get("system")
    system_texts: list[str] = []
    if isinstance(system, str) and system:
        split.pieces.append(Piece("system", "system", system, "system", "0"))
        system_texts.append(system)
    elif isinstance(system, list):
        for i, block in enumerate(system):
            if not isinstance(block, dict):
                continue
            text = str(block.get("text", "")) if block.get("type") == "text" else dumps(block)
            split.pieces.append(Piece("system", f"system[{i}]", text, "system", str(i)))
            if text.lstrip().startswith(BILLING_PREFIX):
                split.billing = parse_billing(text)
            else:
                system_texts.append(text)
    split.system_text = "\n".join(system_texts)
    tools = body.get("tools")
    if isinstance(tools, list):
        split.pieces.extend(tool_pieces(tools, "input_schema", servers))
        split.tool_names = tuple(str(t.get("name", "")) for t in tools if isinstance(t, dict))
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise ValueError("unknown request shape: no messages list")
    split.message_count = len(messages)
    latest = latest_user_index(messages)
    tool_names: dict[str, str] = {}
    first_user: int | None = None
    for index, message in enumerate(messages):
        if isinstance(message, dict):
            split.pieces.extend(message_pieces(message, index, index == latest, tool_names))
            if first_user is None and message.get("role") == "user":
                first_user = index
    split.first_user = first_user_text(split.pieces, first_user)
    output_config = body.get("output_config")
    # A JSON-schema answer asks for `format`; Claude Code's main requests carry {"effort": ...} too.
    split.json_output = isinstance(output_config, dict) and isinstance(output_config.get("format"), dict)
    return split
