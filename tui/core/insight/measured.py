"""Findings measured on stored request bodies: dominant tool results, what slim_results saves, break fixes."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from tui.core.insight.model import Finding
from tui.core.records import RequestRecord
from tui.core.transforms.body_slots import SYSTEM, TOOL_RESULT, iter_text_slots
from tui.core.transforms.settings import TransformSettings
from tui.core.transforms.slimming import ToolResultSlimmer, slim_text
from tui.core.transforms.stabilizer import BUILTIN_PATTERNS
from tui.core.transforms.suggest import suggest_pattern_spec

if TYPE_CHECKING:
    from tui.core.tokens import TokenCounter

NO_BODY = (
    "cannot be measured: the request body was not kept ([journal] store_bodies is off); "
    "turn it on and the next requests can be measured"
)
TOP = 3


def _by_tool_lines(record: RequestRecord) -> list[str]:
    assert record.anatomy is not None
    ranked = sorted(record.anatomy.tool_results_by_tool.items(), key=lambda kv: -kv[1])
    lines = ["by tool: " + ", ".join(f"{name} {tokens:,}" for name, tokens in ranked[:5])]
    largest = sorted(
        (p for p in record.anatomy.parts if p.category == "tool_results"), key=lambda p: -p.tokens
    )
    if largest:
        lines.append("largest: " + ", ".join(f"{p.label} {p.tokens:,}" for p in largest[:TOP]))
    return lines


def tool_results(
    record: RequestRecord,
    body: dict[str, Any] | None,
    counter: TokenCounter | None,
    settings: TransformSettings,
) -> list[Finding]:
    """Tool results of the newest request: by tool, the largest, repeats, and slim_results' real saving."""
    if record.anatomy is None:
        return []
    total = record.anatomy.categories.get("tool_results", 0)
    prompt = record.anatomy.total_tokens
    if not total:
        return []
    lines = _by_tool_lines(record)
    data: dict[str, Any] = {"request": record.id, "tool_results_tokens": total,
                            "by_tool": dict(record.anatomy.tool_results_by_tool)}  # fmt: skip
    saved = 0
    enabled = "slim_results" in settings.enabled
    if body is None or counter is None:
        why = NO_BODY if body is None else "cannot be measured: no token counter"
        lines.append(f"repeated outputs and the slim_results saving {why}")
        data["slim_results_saved"] = None
    else:
        slots = list(iter_text_slots(body, record.dialect, (TOOL_RESULT,)))
        slimmer = ToolResultSlimmer.from_settings(settings)
        slimmed = [
            s.text if slimmer.skips(s.tool_name) else slim_text(s.text, slimmer.limits)[0] for s in slots
        ]
        texts = list(dict.fromkeys([s.text for s in slots] + slimmed))
        counts = dict(zip(texts, counter.count_many(texts), strict=True))
        per_tool: Counter[str] = Counter()
        for slot, new in zip(slots, slimmed, strict=True):
            per_tool[slot.tool_name or "?"] += counts[slot.text] - counts[new]
        saved = sum(per_tool.values())
        repeats = Counter(s.text for s in slots)
        repeated = [(text, n) for text, n in repeats.items() if n > 1]
        repeated_tokens = sum(counts[text] * (n - 1) for text, n in repeated)
        if repeated:
            tools = {s.tool_name or "?" for s in slots if repeats[s.text] > 1}
            lines.append(
                f"repeated identical outputs: {len(repeated)} output(s) returned again "
                f"({repeated_tokens:,} tokens of repeats; {', '.join(sorted(tools))})"
            )
        detail = ", ".join(f"{name} {n:,}" for name, n in per_tool.most_common() if n > 0)
        lines.append(
            f"slim_results would save {saved:,} tokens on this request (measured with the {counter.name} "
            f"counter{': ' + detail if detail else ''})" + (" - it is on already" if enabled else "")
        )
        data.update(slim_results_saved=saved, slim_by_tool=dict(per_tool), repeated_tokens=repeated_tokens,
                    counter=counter.name)  # fmt: skip
    return [
        Finding(
            kind="tool_results",
            title=f"Tool results are {total / prompt:.0%} of the prompt ({total:,} tokens)",
            lines=tuple(lines),
            apply="`ctxbudget transforms on slim_results` (or `t` in the dashboard)",
            tokens_saved=0 if enabled else saved,
            data=data,
        )
    ]


def _system_texts(body: dict[str, Any], dialect: str) -> dict[Any, str]:
    return {slot.path: slot.text for slot in iter_text_slots(body, dialect, (SYSTEM,))}


def prevention(old_body: dict[str, Any], new_body: dict[str, Any], dialect: str) -> str | None:
    """The stabilizer pattern that makes two bodies' system prompts equal, or None."""
    old, new = _system_texts(old_body, dialect), _system_texts(new_body, dialect)
    for path in old.keys() & new.keys():
        a, b = old[path], new[path]
        if a == b:
            continue
        for pattern in BUILTIN_PATTERNS:
            if pattern.regex.sub(pattern.replacement, a) == pattern.regex.sub(pattern.replacement, b):
                return f"the built-in pattern {pattern.name!r} ([transforms] stabilizer_builtins)"
        spec = suggest_pattern_spec(a, b, "system")
        return f"[transforms] stabilizer_patterns entry {spec!r}" if spec else None
    return None
