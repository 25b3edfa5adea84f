"""The host prompt cache (`--cache-ram`) as the log tells it at each slot selection: saved, refused,
dropped or restored prompts, and the cache's size limit at startup."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tui.core.logs import events as ev

_LIMIT_RE = re.compile(r"prompt cache is enabled, size limit: ([\d.]+) MiB")
_SAVING_RE = re.compile(r"- saving prompt with length +(\d+)")
_FOUND_RE = re.compile(r"- found better prompt with f_keep")
_TOO_BIG_RE = re.compile(r"- prompt state size ([\d.]+) MiB exceeds cache size limit ([\d.]+) MiB")
_DROPPED_RE = re.compile(r"removing oldest entry")
_FUNCS = frozenset({"load_model", "get_availabl", "prompt_save", "alloc", "load", "update"})

HOST_CACHE_OFF = 0.0  # host_cache_mib when the log said the prompt cache is disabled


@dataclass
class HostCacheActivity:
    """What the host prompt cache did while a slot was picked for the next task."""

    looked: bool = False  # the server updated the cache and looked for a better prompt
    restored: bool = False  # ... and loaded one into the slot
    saving: int | None = None  # length of the prompt being saved last
    refused: int | None = None  # length of a prompt too large for the cache (not kept)
    refused_mib: float | None = None
    dropped: int = 0  # older entries removed to make room


def host_cache_line(event: ev.Raw) -> tuple[str, re.Match[str] | None] | None:
    """(what, match) for a prompt-cache line of the server component, else None (cheap for other lines)."""
    if event.component != "srv" or event.func not in _FUNCS:
        return None
    text = event.message
    if "prompt cache is disabled" in text:
        return "off", None
    for what, pattern in (
        ("limit", _LIMIT_RE),
        ("saving", _SAVING_RE),
        ("found", _FOUND_RE),
        ("too_big", _TOO_BIG_RE),
        ("dropped", _DROPPED_RE),
    ):
        match = pattern.search(text)
        if match is not None:
            return what, match
    if text == "updating prompt cache":
        return "looked", None
    return None


def fold(activity: HostCacheActivity, what: str, match: re.Match[str] | None) -> None:
    """Add one selection-time line to the activity."""
    if what == "looked":
        activity.looked = True
    elif what == "found":
        activity.restored = True
    elif what == "saving" and match is not None:
        activity.saving = int(match.group(1))
    elif what == "too_big" and match is not None:
        activity.refused, activity.refused_mib = activity.saving, float(match.group(2))
    elif what == "dropped":
        activity.dropped += 1
