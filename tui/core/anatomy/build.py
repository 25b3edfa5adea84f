"""Counted pieces → the immutable Anatomy (categories, MCP servers, tools, parts)."""

from __future__ import annotations

from tui.core.anatomy.model import CATEGORIES, Anatomy, Part, ToolCost
from tui.core.anatomy.pieces import Piece, Split


def piece_tokens(pieces: list[Piece], counted: list[int]) -> list[int]:
    """Tokens per piece: fixed estimates (images) or the counter's value, in piece order."""
    values = iter(counted)
    return [p.fixed_tokens if p.fixed_tokens is not None else next(values) for p in pieces]


def build_anatomy(
    split: Split, tokens: list[int], counter: str, exact: bool, server_prompt_tokens: int | None
) -> Anatomy:
    """Aggregate per-piece tokens; template_overhead = server prompt tokens - sum of parts (clamped at 0)."""
    categories = dict.fromkeys(CATEGORIES, 0)
    parts: list[Part] = []
    tools: list[ToolCost] = []
    mcp: dict[str, dict[str, int]] = {}
    results: dict[str, int] = {}
    images = 0
    for piece, count in zip(split.pieces, tokens, strict=True):
        categories[piece.category] += count
        parts.append(Part(piece.category, piece.label, count, piece.server, piece.tool, piece.message_index))
        if piece.section == "tools":
            tools.append(ToolCost(piece.tool or piece.key, piece.server, count))
            if piece.server is not None:
                entry = mcp.setdefault(piece.server, {"tools": 0, "tokens": 0})
                entry["tools"] += 1
                entry["tokens"] += count
        elif piece.category == "tool_results" and piece.tool is not None:
            results[piece.tool] = results.get(piece.tool, 0) + count
        elif piece.category == "images":
            images += 1
    if server_prompt_tokens is not None:
        parts_sum = sum(tokens)
        raw = server_prompt_tokens - parts_sum
        categories["template_overhead"] = max(0, raw)
        parts.append(
            Part(
                "template_overhead",
                f"template overhead (server {server_prompt_tokens} - parts {parts_sum} = {raw})",
                raw,
            )
        )
    return Anatomy(
        dialect=split.dialect,
        counter=counter,
        exact=exact,
        categories=categories,
        mcp_servers=mcp,
        tools=tuple(tools),
        tool_results_by_tool=results,
        image_count=images,
        parts=tuple(parts),
        model=split.model,
        stream=split.stream,
        message_count=split.message_count,
    )
