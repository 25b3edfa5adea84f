"""Count what the model receives: the request rendered by the server's own chat template (POST
/apply-template), tokenized with pieces (POST /tokenize), each part's rendered span counted."""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tui.core.anatomy.model import Part
from tui.core.anatomy.pieces import Piece
from tui.core.tokens import CounterError

# Pieces located by a JSON object holding their name (tool schemas, tool calls).
NAMED_OBJECTS = ("tools", "mcp_tools", "tool_calls")


@dataclass(frozen=True)
class Rendered:
    """Tokens per piece as rendered (None: not located, its as-sent count stands), and what was left out."""

    total: int  # tokens of the whole rendered prompt
    tokens: tuple[int | None, ...]
    dropped: tuple[str, ...]  # labels of tool schemas the template does not render
    first_token: tuple[int | None, ...] = ()  # where each located piece starts (token index)


def chat_request(body: dict[str, Any], dialect: str) -> dict[str, Any]:
    """The request as an OpenAI chat body (what /apply-template takes); Anthropic bodies are converted
    the way llama-server converts them for /v1/messages (server_chat_convert_anthropic_to_oai)."""
    if dialect != "anthropic":
        chat = {"messages": body.get("messages") or []}
        if body.get("tools"):
            chat["tools"] = body["tools"]
        return chat
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        if isinstance(system, str):
            text = normalize_billing(system)
        elif isinstance(system, list):  # text blocks joined with nothing between them, as the server does
            text = "".join(
                normalize_billing(str(b.get("text", "")))
                for b in system
                if isinstance(b, dict) and b.get("type") == "text"
            )
        else:
            text = ""
        messages.append({"role": "system", "content": text})
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            messages.extend(_openai_messages(message))
    out: dict[str, Any] = {"messages": messages}
    tools = body.get("tools")
    if isinstance(tools, list):
        out["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.get("name", ""),
                    "description": t.get("description", ""),
                    "parameters": t["input_schema"] if "input_schema" in t else {},
                },
            }
            for t in tools
            if isinstance(t, dict)
        ]
    return out


_BILLING = "x-anthropic-billing-header:"
_CCH_LENGTH = 5


def normalize_billing(text: str) -> str:
    """Claude Code's billing line with its per-request cch=XXXXX as fffff, as llama-server rewrites it."""
    if not text.startswith(_BILLING):
        return text
    at = text.find("cch=", len(_BILLING))
    if at < 0:
        return text
    begin = at + 4
    if begin + _CCH_LENGTH < len(text) and text[begin + _CCH_LENGTH] == ";":
        return text[:begin] + "f" * _CCH_LENGTH + text[begin + _CCH_LENGTH :]
    return text


def _openai_messages(message: dict[str, Any]) -> list[dict[str, Any]]:
    """One Anthropic message as chat messages: text blocks kept as content parts, tool calls joined,
    tool results as tool messages after it (their text blocks joined with nothing between them)."""
    role = str(message.get("role", ""))
    if "content" not in message:
        return [] if role == "assistant" else [message]
    content = message["content"]
    if not isinstance(content, list):
        return [message]
    parts: list[Any] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    reasoning = ""
    for block in content:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append(block)
        elif kind == "thinking":
            reasoning += str(block.get("thinking", ""))
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input", {})).decode()
            function = {"name": block.get("name", ""), "arguments": arguments}
            calls.append({"id": block.get("id", ""), "type": "function", "function": function})
        elif kind == "tool_result":
            results.append(_tool_message(block))
    out: list[dict[str, Any]] = []
    if parts or calls or reasoning:
        entry: dict[str, Any] = {"role": role, "content": parts or ""}
        if calls:
            entry["tool_calls"] = calls
        if reasoning:
            entry["reasoning_content"] = reasoning
        out.append(entry)
    return out + results


def _tool_message(block: dict[str, Any]) -> dict[str, Any]:
    inner = block.get("content")
    if isinstance(inner, list):
        texts = [b for b in inner if isinstance(b, dict) and b.get("type") == "text"]
        inner = "".join(str(b.get("text", "")) for b in texts)
    elif not isinstance(inner, str):
        inner = ""
    return {"role": "tool", "tool_call_id": block.get("tool_use_id", ""), "content": inner}


def token_starts(pieces: Sequence[Any]) -> list[int]:
    """UTF-8 byte offset where each token of a /tokenize `with_pieces` answer starts."""
    starts: list[int] = []
    offset = 0
    for item in pieces:
        starts.append(offset)
        piece = item.get("piece", "") if isinstance(item, dict) else ""
        offset += len(piece) if isinstance(piece, list) else len(str(piece).encode("utf-8"))
    return starts


def attribute(prompt: bytes, starts: list[int], pieces: Sequence[Piece]) -> Rendered:
    """Each piece's rendered span counted; tool schemas not found are the template's drops."""
    tokens: list[int | None] = []
    firsts: list[int | None] = []
    dropped: list[str] = []
    cursor = 0  # messages appear in order: search each one after the previous
    for piece in pieces:
        firsts.append(None)
        if piece.fixed_tokens is not None:
            tokens.append(None)
            continue
        if piece.category in NAMED_OBJECTS:
            start = 0 if piece.section == "tools" else cursor
            span = _named_object(prompt, (piece.tool or piece.key).encode(), start)
            if span is None and piece.section == "tools":
                dropped.append(piece.label)
                tokens.append(0)
                continue
        else:
            text = normalize_billing(piece.text) if piece.section == "system" else piece.text
            start = cursor if piece.section == "messages" else 0
            span = _text_span(prompt, text.strip().encode("utf-8"), start)
        if span is None:
            tokens.append(None)
            continue
        if piece.section == "messages":
            cursor = span[1]
        first = bisect.bisect_left(starts, span[0])
        firsts[-1] = first
        tokens.append(bisect.bisect_left(starts, span[1]) - first)
    return Rendered(len(starts), tuple(tokens), tuple(dropped), tuple(firsts))


def rendered_parts(parts: Sequence[Part], rendered: Rendered, total: int) -> tuple[Part, ...]:
    """The parts in prompt order with the template's own text between them as template_overhead parts.

    `parts` are the counted pieces (one per piece, overhead excluded); pieces not located keep their
    as-sent place after the located ones. The last template part takes whatever makes the sum `total`.
    """
    located = sorted((first, index) for index, first in enumerate(rendered.first_token) if first is not None)
    out: list[Part] = []
    position = 0
    for first, index in located:
        if first > position:
            out.append(
                Part("template_overhead", f"template text before {parts[index].label}", first - position)
            )
        out.append(parts[index])
        position = max(position, first + parts[index].tokens)
    placed = {index for _, index in located}
    out.extend(p for i, p in enumerate(parts) if i not in placed)
    rest = total - sum(p.tokens for p in out)
    out.append(Part("template_overhead", "template text after the last part", rest))
    return tuple(out)


def _text_span(prompt: bytes, text: bytes, start: int) -> tuple[int, int] | None:
    if not text:
        return None
    found = prompt.find(text, start)
    if found < 0:
        found = prompt.find(text[:200], start)  # templates may trim or escape the tail
    return None if found < 0 else (found, found + len(text))


def _named_object(prompt: bytes, name: bytes, start: int) -> tuple[int, int] | None:
    """The JSON object (a tool's whole {"type": "function", ...} entry) naming `name`."""
    for pattern in (b'"name": "' + name + b'"', b'"name":"' + name + b'"'):
        at = prompt.find(pattern, start)
        if at >= 0:
            break
    else:
        return None
    begin = prompt.rfind(b"{", 0, at)
    if begin < 0:
        return None
    outer = prompt.rfind(b"{", 0, begin)
    if outer >= 0 and prompt[outer:begin].rstrip().endswith(b'"function":'):
        begin = outer
    end = _object_end(prompt, begin)
    return (begin, end) if end is not None else (at, at + len(pattern))


def _object_end(data: bytes, begin: int) -> int | None:
    depth = 0
    in_string = escaped = False
    for index in range(begin, min(len(data), begin + 2_000_000)):
        char = data[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == 0x5C:  # backslash
                escaped = True
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char == 0x7B:
            depth += 1
        elif char == 0x7D:
            depth -= 1
            if depth == 0:
                return index + 1
    return None


class TemplateRenderer:
    """Renders requests with llama-server's own chat template and tokenizes them with pieces."""

    def __init__(self, url: str, api_key: str = "", timeout: float = 10.0) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http_error = httpx.HTTPError
        self._client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self._specials: int | None = None

    def render(self, body: dict[str, Any], dialect: str, pieces: Sequence[Piece]) -> Rendered:
        """The rendered counts of one request; raises CounterError when the server cannot render it."""
        try:
            answer = self._client.post("/apply-template", json=chat_request(body, dialect))
            answer.raise_for_status()
            prompt = str(answer.json()["prompt"])
            items = self._tokenize(prompt, with_pieces=True)
            if self._specials is None:  # BOS and the like: added to the prompt, not part of its text
                self._specials = len(self._tokenize("", with_pieces=False, add_special=True))
        except (self._http_error, ValueError, KeyError, TypeError) as exc:
            raise CounterError(f"llama-server could not render the request with its template: {exc}") from exc
        rendered = attribute(prompt.encode("utf-8"), token_starts(items), pieces)
        return dataclasses.replace(rendered, total=rendered.total + self._specials)

    def _tokenize(self, text: str, *, with_pieces: bool, add_special: bool = False) -> list[Any]:
        body = {"content": text, "add_special": add_special, "with_pieces": with_pieces}
        answer = self._client.post("/tokenize", json=body)
        answer.raise_for_status()
        tokens = answer.json()["tokens"]
        if not isinstance(tokens, list):
            raise ValueError("/tokenize returned no token list")
        return tokens

    def close(self) -> None:
        """Release the HTTP client."""
        self._client.close()
