"""Tool description trimming: long descriptions cut to their first paragraph; names and schemas untouched."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from typing import Any

from tui.core.transforms.body_slots import TOOL_DESCRIPTION, Path, iter_text_slots, path_label, replace_texts
from tui.core.transforms.model import TextEdit, TransformResult
from tui.core.transforms.settings import TransformSettings

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def first_paragraph(text: str) -> str:
    """The first non-empty paragraph of a description, without trailing whitespace."""
    for part in _PARAGRAPH_BREAK.split(text.strip()):
        if part.strip():
            return part.rstrip()
    return text


class ToolDescriptionTrimmer:
    """Shortens tool descriptions longer than min_chars to their first paragraph, except opted-out tools."""

    name = "trim_descriptions"
    default_enabled = False

    def __init__(self, min_chars: int = 400, keep_tools: Sequence[str] = ()) -> None:
        self.min_chars = min_chars
        self.keep_tools = list(keep_tools)

    @classmethod
    def from_settings(cls, settings: TransformSettings) -> ToolDescriptionTrimmer:
        """Build it with the settings' threshold and opt-outs."""
        return cls(settings.trim_min_chars, settings.trim_keep_tools)

    def keeps(self, tool_name: str | None) -> bool:
        """Whether this tool's description is left whole."""
        return tool_name is not None and any(fnmatch.fnmatchcase(tool_name, p) for p in self.keep_tools)

    def apply(self, body: dict[str, Any], dialect: str) -> TransformResult:
        """Trim every long tool description."""
        replacements: dict[Path, str] = {}
        edits: list[TextEdit] = []
        details: list[str] = []
        for slot in iter_text_slots(body, dialect, (TOOL_DESCRIPTION,)):
            if len(slot.text) <= self.min_chars:
                continue
            if self.keeps(slot.tool_name):
                continue
            short = first_paragraph(slot.text)
            if len(short) < len(slot.text):
                replacements[slot.path] = short
                edits.append(TextEdit(slot.text, short))
                who = slot.tool_name or path_label(slot.path)
                details.append(f"{who}: {len(slot.text)} → {len(short)} chars")
        if not replacements:
            return TransformResult(body, False, [])
        return TransformResult(replace_texts(body, replacements), True, details, tuple(edits))
