"""Tool-result slimming: strip ANSI and trailing blanks, fold repeated lines, cut long outputs."""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tui.core.transforms.body_slots import TOOL_RESULT, Path, iter_text_slots, path_label, replace_texts
from tui.core.transforms.model import TextEdit, TransformResult
from tui.core.transforms.settings import TransformSettings

# CSI sequences (colors, cursor moves), OSC sequences (titles, hyperlinks) and two-byte escapes.
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
MARKER_PREFIX = "[ctxbudget: "


@dataclass(frozen=True)
class SlimLimits:
    """How far tool outputs are slimmed."""

    max_chars: int = 20_000
    max_lines: int = 400
    head_fraction: float = 0.5
    min_repeat: int = 3


def strip_ansi(text: str) -> str:
    """Text without terminal escape sequences."""
    return ANSI_RE.sub("", text) if "\x1b" in text else text


def _resolve_redraws(line: str) -> str:
    # A bare carriage return redraws the line (progress bars): only the last drawing is visible.
    stripped = line.rstrip("\r")
    if "\r" not in stripped:
        return stripped
    parts = [p for p in stripped.split("\r") if p.strip()]
    return parts[-1] if parts else ""


def fold_repeats(lines: Sequence[str], min_repeat: int) -> tuple[list[str], int]:
    """Runs of identical lines become one line and a count marker; runs of blank lines become one blank."""
    out: list[str] = []
    folded = 0
    i = 0
    while i < len(lines):
        j = i + 1
        while j < len(lines) and lines[j] == lines[i]:
            j += 1
        run = j - i
        if lines[i] == "" and run > 1:
            out.append("")
            folded += run - 1
        elif run >= max(2, min_repeat):
            out.append(lines[i])
            out.append(f"{MARKER_PREFIX}line above repeated {run - 1} more times]")
            folded += run - 1
        else:
            out.extend(lines[i:j])
        i = j
    return out, folded


def _cut_lines(lines: list[str], limits: SlimLimits) -> tuple[list[str], int]:
    if len(lines) <= limits.max_lines or limits.max_lines < 3:
        return lines, 0
    keep = limits.max_lines - 1
    head = max(1, int(keep * limits.head_fraction))
    tail = max(0, keep - head)
    removed = lines[head : len(lines) - tail]
    chars = sum(len(x) + 1 for x in removed)
    marker = f"{MARKER_PREFIX}{len(removed)} lines ({chars} chars) cut here]"
    return [*lines[:head], marker, *lines[len(lines) - tail :]], len(removed)


def _cut_chars(text: str, limits: SlimLimits) -> tuple[str, int]:
    if len(text) <= limits.max_chars:
        return text, 0
    budget = max(0, limits.max_chars - 80)
    head_end = int(budget * limits.head_fraction)
    tail_start = len(text) - (budget - head_end)
    nl = text.rfind("\n", 0, head_end)
    if nl > head_end // 2:
        head_end = nl
    nl = text.find("\n", tail_start, len(text))
    if 0 <= nl < tail_start + (len(text) - tail_start) // 2:
        tail_start = nl + 1
    head = text[:head_end].rstrip(" \t")
    cut = tail_start - len(head)
    lines = text.count("\n", len(head), tail_start)
    marker = f"\n{MARKER_PREFIX}{cut} chars ({lines} lines) cut here]\n"
    return head + marker + text[tail_start:], cut


CACHE_MAX_CHARS = 65_536


def slim_text(text: str, limits: SlimLimits) -> tuple[str, list[str]]:
    """The slimmed text and short notes on what changed."""
    # Every request of a conversation repeats its earlier tool results: remember recent results.
    if len(text) <= CACHE_MAX_CHARS:
        out, notes = _slim_cached(text, limits)
        return out, list(notes)
    return _slim(text, limits)


@functools.lru_cache(maxsize=256)
def _slim_cached(text: str, limits: SlimLimits) -> tuple[str, tuple[str, ...]]:
    out, notes = _slim(text, limits)
    return out, tuple(notes)


def _slim(text: str, limits: SlimLimits) -> tuple[str, list[str]]:
    notes: list[str] = []
    clean = strip_ansi(text)
    if clean != text:
        notes.append("ansi")
    lines = [_resolve_redraws(line).rstrip() for line in clean.split("\n")]
    while len(lines) > 1 and lines[-1] == "":
        lines.pop()
    if "\n".join(lines) != clean:
        notes.append("whitespace")
    lines, folded = fold_repeats(lines, limits.min_repeat)
    if folded:
        notes.append(f"folded {folded} repeated lines")
    lines, cut_lines = _cut_lines(lines, limits)
    if cut_lines:
        notes.append(f"cut {cut_lines} lines")
    out, cut_chars = _cut_chars("\n".join(lines), limits)
    if cut_chars:
        notes.append(f"cut {cut_chars} chars")
    return out, notes


class ToolResultSlimmer:
    """Slims tool outputs only (Anthropic tool_result, OpenAI role tool); file reads are skipped."""

    name = "slim_results"
    default_enabled = False

    def __init__(self, limits: SlimLimits, skip_tools: Sequence[str] = ()) -> None:
        self.limits = limits
        self.skip_tools = list(skip_tools)

    @classmethod
    def from_settings(cls, settings: TransformSettings) -> ToolResultSlimmer:
        """Build it with the settings' limits and skip list."""
        limits = SlimLimits(
            settings.slim_max_chars,
            settings.slim_max_lines,
            min(0.95, max(0.05, settings.slim_head_fraction)),
            settings.slim_min_repeat,
        )
        return cls(limits, settings.slim_skip_tools)

    def skips(self, tool_name: str | None) -> bool:
        """Whether outputs of this tool are left untouched."""
        return tool_name is not None and any(fnmatch.fnmatchcase(tool_name, p) for p in self.skip_tools)

    def apply(self, body: dict[str, Any], dialect: str) -> TransformResult:
        """Slim every tool result text of the body."""
        replacements: dict[Path, str] = {}
        edits: list[TextEdit] = []
        details: list[str] = []
        for slot in iter_text_slots(body, dialect, (TOOL_RESULT,)):
            if self.skips(slot.tool_name):
                continue
            text, notes = slim_text(slot.text, self.limits)
            if text != slot.text:
                replacements[slot.path] = text
                edits.append(TextEdit(slot.text, text))
                who = f" ({slot.tool_name})" if slot.tool_name else ""
                details.append(f"{path_label(slot.path)}{who}: {', '.join(notes)}")
        if not replacements:
            return TransformResult(body, False, [])
        return TransformResult(replace_texts(body, replacements), True, details, tuple(edits))


def clear_cache() -> None:
    """Forget remembered results (for benches and tests)."""
    _slim_cached.cache_clear()
