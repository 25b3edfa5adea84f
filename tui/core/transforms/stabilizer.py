"""Cache stabilizer: replace prompt-prefix content that changes between requests without meaning anything."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from tui.core.transforms.body_slots import (
    SYSTEM,
    TOOL_DESCRIPTION,
    USER,
    Path,
    iter_text_slots,
    path_label,
    replace_texts,
)
from tui.core.transforms.model import TextEdit, TransformResult
from tui.core.transforms.settings import StabilizerPattern, TransformSettings, parse_pattern_spec

_SCOPE_REGIONS = {"system": SYSTEM, "tools": TOOL_DESCRIPTION, "messages": USER}

_BILLING = r"(?m)^(x-anthropic-billing-header:[^\n]*?\b"

BUILTIN_PATTERNS: tuple[StabilizerPattern, ...] = (
    StabilizerPattern(
        "cc_billing_version",
        re.compile(_BILLING + r"cc_version=\d+(?:\.\d+){2})\.[0-9A-Za-z]+"),
        r"\1",
        ("system",),
        True,
        "Claude Code's billing line carries a hash suffix after cc_version that llama-server does not use",
    ),
    StabilizerPattern(
        "cc_billing_cch",
        re.compile(_BILLING + r"cch=)[0-9A-Za-z]+"),
        r"\g<1>00000",
        ("system",),
        True,
        "the cch= value of Claude Code's billing line changes per request and means nothing to the model",
    ),
    StabilizerPattern(
        "iso_timestamp_to_date",
        re.compile(
            r"\b(\d{4}-\d{2}-\d{2})[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?(?![\w:.])"
        ),
        r"\1",
        ("system",),
        False,
        "keeps the date, drops the time of day: the model loses the clock time",
    ),
    StabilizerPattern(
        "todays_date",
        re.compile(r"(?m)(Today's date is:?\s*)[^\n]*?(\.?)$"),
        r"\1(not given)\2",
        ("system",),
        False,
        "the date changes once a day (one re-processing a day); hiding it makes the model guess the date",
    ),
    StabilizerPattern(
        "uuid",
        re.compile(r"(?<![\w/.\-])[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}(?![\w/.\-])"),
        "00000000-0000-0000-0000-000000000000",
        ("system",),
        False,
        "only safe when the model never has to repeat the id (ids inside paths are left alone)",
    ),
)

BUILTIN_NAMES: tuple[str, ...] = tuple(p.name for p in BUILTIN_PATTERNS)
# Text a built-in pattern cannot match without: a slot lacking it is skipped before the regex runs
# (Claude Code's 30 KB system prompt would otherwise be scanned on every request).
_REQUIRED_TEXT = {
    "cc_billing_version": "x-anthropic-billing-header",
    "cc_billing_cch": "x-anthropic-billing-header",
}


def active_patterns(settings: TransformSettings) -> list[StabilizerPattern]:
    """The built-in patterns named in the settings followed by the user's own; raises on unknown names."""
    by_name = {p.name: p for p in BUILTIN_PATTERNS}
    unknown = [n for n in settings.stabilizer_builtins if n not in by_name]
    if unknown:
        raise ValueError(f"unknown stabilizer_builtins {unknown}; known: {', '.join(BUILTIN_NAMES)}")
    chosen = [by_name[n] for n in settings.stabilizer_builtins]
    chosen += [parse_pattern_spec(spec, i) for i, spec in enumerate(settings.stabilizer_patterns)]
    return chosen


class CacheStabilizer:
    """Normalizes volatile spans (billing hashes, opt-in timestamps, ids) so the prompt prefix stays equal."""

    name = "stabilize"
    default_enabled = True

    def __init__(self, patterns: Sequence[StabilizerPattern]) -> None:
        self.patterns = list(patterns)
        self.regions = frozenset(_SCOPE_REGIONS[s] for p in self.patterns for s in p.scopes)

    @classmethod
    def from_settings(cls, settings: TransformSettings) -> CacheStabilizer:
        """Build it with the patterns the settings choose."""
        return cls(active_patterns(settings))

    def apply(self, body: dict[str, Any], dialect: str) -> TransformResult:
        """Replace every pattern match in the slots of its scopes."""
        replacements: dict[Path, str] = {}
        edits: list[TextEdit] = []
        details: list[str] = []
        if not self.regions:
            return TransformResult(body, False, [])
        for slot in iter_text_slots(body, dialect, self.regions):
            text = slot.text
            hits: list[str] = []
            for pattern in self.patterns:
                if slot.region not in (_SCOPE_REGIONS[s] for s in pattern.scopes):
                    continue
                required = _REQUIRED_TEXT.get(pattern.name)
                if required is not None and required not in text:
                    continue
                text, count = pattern.regex.subn(pattern.replacement, text)
                if count:
                    hits.append(f"{pattern.name}×{count}")
            if text != slot.text:
                replacements[slot.path] = text
                edits.append(TextEdit(slot.text, text))
                details.append(f"{path_label(slot.path)}: {', '.join(hits)}")
        if not replacements:
            return TransformResult(body, False, [])
        return TransformResult(replace_texts(body, replacements), True, details, tuple(edits))
