"""Find the text strings of a request body by region, and rebuild a body with some of them replaced."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]

# Regions a text slot can belong to.
SYSTEM = "system"
TOOL_DESCRIPTION = "tool_description"
USER = "user"
ASSISTANT = "assistant"
TOOL_RESULT = "tool_result"

ALL_REGIONS = frozenset({SYSTEM, TOOL_DESCRIPTION, USER, ASSISTANT, TOOL_RESULT})

_SYSTEM_ROLES = frozenset({"system", "developer"})
_TOOL_USE_TYPES = ("tool_use", "server_tool_use", "mcp_tool_use")


@dataclass(frozen=True)
class TextSlot:
    """One string of the body that a transform may rewrite, with where it lives."""

    path: Path
    region: str
    text: str
    tool_name: str | None = None


def iter_text_slots(
    body: Mapping[str, Any], dialect: str, regions: Collection[str] = ALL_REGIONS
) -> Iterator[TextSlot]:
    """Yield the rewritable strings of a body in these regions; anything of an unknown shape is skipped."""
    if dialect == "anthropic":
        if SYSTEM in regions:
            yield from _anthropic_system(body.get("system"))
        if TOOL_DESCRIPTION in regions:
            yield from _anthropic_tools(body.get("tools"))
        yield from _anthropic_messages(body.get("messages"), regions)
    elif dialect == "openai":
        if TOOL_DESCRIPTION in regions:
            yield from _openai_tools(body.get("tools"))
        yield from _openai_messages(body.get("messages"), regions)


def _anthropic_system(system: Any) -> Iterator[TextSlot]:
    if isinstance(system, str):
        yield TextSlot(("system",), SYSTEM, system)
    elif isinstance(system, list):
        for i, block in enumerate(system):
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                yield TextSlot(("system", i, "text"), SYSTEM, block["text"])


def _anthropic_tools(tools: Any) -> Iterator[TextSlot]:
    if not isinstance(tools, list):
        return
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and isinstance(tool.get("description"), str):
            name = tool.get("name") if isinstance(tool.get("name"), str) else None
            yield TextSlot(("tools", i, "description"), TOOL_DESCRIPTION, tool["description"], name)


def _openai_tools(tools: Any) -> Iterator[TextSlot]:
    if not isinstance(tools, list):
        return
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("description"), str):
            name = fn.get("name") if isinstance(fn.get("name"), str) else None
            yield TextSlot(("tools", i, "function", "description"), TOOL_DESCRIPTION, fn["description"], name)


def _role_region(role: Any) -> str | None:
    if not isinstance(role, str):
        return None
    if role in _SYSTEM_ROLES:
        return SYSTEM
    if role == "user":
        return USER
    if role == "assistant":
        return ASSISTANT
    if role == "tool":
        return TOOL_RESULT
    return None


def _anthropic_tool_names(messages: list[Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict) or block.get("type") not in _TOOL_USE_TYPES:
                continue
            if isinstance(block.get("id"), str) and isinstance(block.get("name"), str):
                names[block["id"]] = block["name"]
    return names


def _anthropic_messages(messages: Any, regions: Collection[str]) -> Iterator[TextSlot]:
    if not isinstance(messages, list):
        return
    tool_names = _anthropic_tool_names(messages) if TOOL_RESULT in regions else {}
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        region = _role_region(message.get("role"))
        if region is None or region == TOOL_RESULT:
            continue
        if region not in regions and not (region == USER and TOOL_RESULT in regions):
            continue
        content = message.get("content")
        texts_wanted = region in regions
        if isinstance(content, str):
            if texts_wanted:
                yield TextSlot(("messages", i, "content"), region, content)
            continue
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and texts_wanted and isinstance(block.get("text"), str):
                yield TextSlot(("messages", i, "content", j, "text"), region, block["text"])
            elif kind == "tool_result" and region == USER and TOOL_RESULT in regions:
                use_id = block.get("tool_use_id")
                name = tool_names.get(use_id) if isinstance(use_id, str) else None
                yield from _result_content(("messages", i, "content", j), block.get("content"), name)


def _result_content(base: Path, content: Any, tool_name: str | None) -> Iterator[TextSlot]:
    if isinstance(content, str):
        yield TextSlot((*base, "content"), TOOL_RESULT, content, tool_name)
    elif isinstance(content, list):
        for k, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                yield TextSlot((*base, "content", k, "text"), TOOL_RESULT, part["text"], tool_name)


def _openai_tool_names(messages: list[Any]) -> dict[str, str]:
    names: dict[str, str] = {}
    for message in messages:
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if not isinstance(calls, list):
            continue
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(call.get("id"), str) and isinstance(fn.get("name"), str):
                names[call["id"]] = fn["name"]
    return names


def _openai_messages(messages: Any, regions: Collection[str]) -> Iterator[TextSlot]:
    if not isinstance(messages, list):
        return
    tool_names = _openai_tool_names(messages) if TOOL_RESULT in regions else {}
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        region = _role_region(message.get("role"))
        if region is None or region not in regions:
            continue
        name: str | None = None
        if region == TOOL_RESULT:
            call_id = message.get("tool_call_id")
            name = tool_names.get(call_id) if isinstance(call_id, str) else None
        content = message.get("content")
        if isinstance(content, str):
            yield TextSlot(("messages", i, "content"), region, content, name)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if _is_text_block(part):
                    yield TextSlot(("messages", i, "content", j, "text"), region, part["text"], name)


def _is_text_block(part: Any) -> bool:
    return isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)


def replace_texts(body: dict[str, Any], replacements: Mapping[Path, str]) -> dict[str, Any]:
    """A new body with the strings at these paths replaced; unchanged subtrees are shared, input untouched."""
    if not replacements:
        return body
    out: dict[str, Any] = dict(body)
    copied: set[Path] = {()}
    for path, text in replacements.items():
        node: Any = out
        for depth, key in enumerate(path[:-1]):
            child = node[key]
            prefix = path[: depth + 1]
            if prefix not in copied:
                child = dict(child) if isinstance(child, dict) else list(child)
                node[key] = child
                copied.add(prefix)
            node = child
        node[path[-1]] = text
    return out


def layout_entries(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The prompt-bearing parts of a body in prompt order, as (label, text) pairs (non-text parts as JSON)."""
    entries: list[tuple[str, str]] = []
    system = body.get("system")
    if isinstance(system, str):
        entries.append(("system", system))
    elif isinstance(system, list):
        for i, block in enumerate(system):
            entries.append((f"system[{i}]", _block_text(block)))
    tools = body.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            entries.extend(_tool_entries(i, tool))
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            entries.extend(_message_entries(i, message))
    return entries


def _block_text(block: Any) -> str:
    if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
        return str(block["text"])
    return _json(block)


def _tool_entries(i: int, tool: Any) -> list[tuple[str, str]]:
    if not isinstance(tool, dict):
        return [(f"tools[{i}]", _json(tool))]
    fn = tool.get("function")
    holder = fn if isinstance(fn, dict) else tool
    name = holder.get("name", "?")
    rest = {k: v for k, v in holder.items() if k != "description"}
    out = [(f"tools[{i}] {name} schema", _json(rest))]
    if isinstance(holder.get("description"), str):
        out.insert(0, (f"tools[{i}] {name} description", str(holder["description"])))
    return out


def _message_entries(i: int, message: Any) -> list[tuple[str, str]]:
    if not isinstance(message, dict):
        return [(f"messages[{i}]", _json(message))]
    role = message.get("role", "?")
    content = message.get("content")
    extra = {k: v for k, v in message.items() if k not in ("role", "content")}
    out: list[tuple[str, str]] = []
    if isinstance(content, str):
        out.append((f"messages[{i}] {role}", content))
    elif isinstance(content, list):
        for j, block in enumerate(content):
            out.extend(_content_block_entries(f"messages[{i}] {role} [{j}]", block))
    elif content is not None:
        out.append((f"messages[{i}] {role}", _json(content)))
    if extra:
        out.append((f"messages[{i}] {role} fields", _json(extra)))
    return out


def _content_block_entries(label: str, block: Any) -> list[tuple[str, str]]:
    if not isinstance(block, dict):
        return [(label, _json(block))]
    kind = block.get("type")
    if kind == "tool_result":
        content = block.get("content")
        head = {k: v for k, v in block.items() if k != "content"}
        out = [(f"{label} tool_result", _json(head))]
        if isinstance(content, str):
            out.append((f"{label} tool_result content", content))
        elif isinstance(content, list):
            for k, part in enumerate(content):
                out.append((f"{label} tool_result content[{k}]", _block_text(part)))
        return out
    if kind == "text" and isinstance(block.get("text"), str):
        return [(f"{label} text", str(block["text"]))]
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return [(f"{label} thinking", str(block["thinking"]))]
    return [(f"{label} {kind}", _json(block))]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=False, default=str)


def path_label(path: Path) -> str:
    """A readable form of a slot path, such as messages[3].content[1].text."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out
