"""Prose compression: drop articles and filler words in what the user typed; code-like parts stay."""

from __future__ import annotations

import functools
import re
from typing import Any

from tui.core.transforms.body_slots import USER, Path, iter_text_slots, path_label, replace_texts
from tui.core.transforms.model import TextEdit, TransformResult
from tui.core.transforms.prose_spans import protected_spans

_ARTICLES = re.compile(r"(?<![^\s(])(?i:a|an|the)[ \t]+(?=([A-Za-z][\w'’-]*))")
_FILLERS = re.compile(
    r"(?<![^\s(])(?i:please|kindly|just|basically|actually|really|simply)[ \t]+(?=[A-Za-z])"
)
_OPENERS = re.compile(
    r"(?<![^\s(])(?i:i would like you to|i'd like you to|i want you to|would you mind|could you please|"
    r"could you|would you|can you|if you don't mind,?|if possible,?)[ \t]+(?=[A-Za-z])"
)
# After these an article is kept: "plan a or b", "vitamin A is", "part a of".
_KEEP_BEFORE = frozenset(
    "and or nor but is are was were be been of to in on at for with by from as than that which who".split()
)
_SENTENCE_START = frozenset(".!?:;\n")
_INNER_SPACES = re.compile(r"(?<=\S)[ \t]{2,}")
_BLANK_LINES = re.compile(r"\n{3,}")

SAMPLE_PROMPT = (
    "Could you please take a look at the failing test in the parser module? I think the bug is basically "
    "in the tokenizer, but I'm not really sure.\n\n"
    "Just run `pytest tests/test_the_parser.py -k 'a or the'` and check the output in /home/a/the.txt.\n"
    "```python\nassert parse('the a an') == ['the', 'a', 'an']\n```\n"
    "<system-reminder>Please keep the reminder as it is.</system-reminder>\n"
    "Kindly also update the docs at https://example.com/the/a/docs when you are done."
)


def _sentence_start(text: str, at: int) -> bool:
    i = at - 1
    while i >= 0 and text[i] in " \t":
        i -= 1
    return i < 0 or text[i] in _SENTENCE_START


def _drops(text: str, start: int, end: int) -> list[tuple[int, int]]:
    cuts: list[tuple[int, int]] = []
    for m in _OPENERS.finditer(text, start, end):
        if _sentence_start(text, m.start()):
            cuts.append(m.span())
    for m in _FILLERS.finditer(text, start, end):
        cuts.append(m.span())
    for m in _ARTICLES.finditer(text, start, end):
        if m.group(1).lower() not in _KEEP_BEFORE:
            cuts.append(m.span())
    return cuts


def _tidy_gap(gap: str) -> str:
    gap = _INNER_SPACES.sub(" ", gap)
    if "\n" in gap:
        # Per line, not by regex: a backtracking regex is quadratic on long runs of blanks.
        lines = gap.split("\n")
        gap = "\n".join([*(line.rstrip(" \t") for line in lines[:-1]), lines[-1]])
    return _BLANK_LINES.sub("\n\n", gap)


CACHE_MAX_CHARS = 65_536


def compress_prose(text: str) -> str:
    """The text with articles, filler words and extra spaces removed outside every protected span."""
    # Every request of a conversation repeats its earlier turns: remember recent results.
    return _compress_cached(text) if len(text) <= CACHE_MAX_CHARS else _compress(text)


@functools.lru_cache(maxsize=256)
def _compress_cached(text: str) -> str:
    return _compress(text)


def _compress(text: str) -> str:
    spans = protected_spans(text)
    pieces: list[str] = []
    pos = 0
    for start, end in [*spans, (len(text), len(text))]:
        if pos < start:
            cuts = sorted(_drops(text, pos, start))
            kept: list[str] = []
            at = pos
            for a, b in cuts:
                if a >= at:
                    kept.append(text[at:a])
                    at = b
                elif b > at:
                    at = b
            kept.append(text[at:start])
            pieces.append(_tidy_gap("".join(kept)))
        pieces.append(text[start:end])
        pos = max(pos, end)
    return "".join(pieces)


def prose_sample(text: str | None = None) -> tuple[str, str]:
    """A before/after pair for the dashboard: the given text (or a built-in sample) and its compression."""
    before = SAMPLE_PROMPT if text is None else text
    return before, compress_prose(before)


class ProseCompressor:
    """Compresses natural-language text of user turns only (never tool results, system or assistant)."""

    name = "compress_prose"
    default_enabled = False

    def apply(self, body: dict[str, Any], dialect: str) -> TransformResult:
        """Compress every user text slot."""
        replacements: dict[Path, str] = {}
        edits: list[TextEdit] = []
        details: list[str] = []
        for slot in iter_text_slots(body, dialect, (USER,)):
            text = compress_prose(slot.text)
            if text != slot.text:
                replacements[slot.path] = text
                edits.append(TextEdit(slot.text, text))
                details.append(f"{path_label(slot.path)}: {len(slot.text)} → {len(text)} chars")
        if not replacements:
            return TransformResult(body, False, [])
        return TransformResult(replace_texts(body, replacements), True, details, tuple(edits))


def clear_cache() -> None:
    """Forget remembered results (for benches and tests)."""
    _compress_cached.cache_clear()
