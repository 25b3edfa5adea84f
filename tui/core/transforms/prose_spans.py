"""Find the parts of user text that prose compression must leave byte-identical."""

from __future__ import annotations

import bisect
import re

Span = tuple[int, int]

_FENCE = re.compile(
    r"(?m)^[ \t]*(`{3,}|~{3,})[^\n]*(?:\n|\Z)(?:[\s\S]*?^[ \t]*\1[`~]*[ \t]*(?:\n|\Z)|[\s\S]*\Z)"
)
_INLINE_CODE = re.compile(r"(`+)[\s\S]*?(?:\1|\Z)")
# Bounded or single-pass patterns only: user text can be a megabyte without a space.
_URL = re.compile(r"(?i)(?:\b[a-z][a-z0-9+.\-]{0,30}://|\bwww\.|\bmailto:)[^\s<>\"'`]+")
_TOKEN = re.compile(r"[^\s\"'`]+")
_DOUBLE_QUOTED = re.compile(r"\"[^\"\n]*\"|“[^”\n]*”|«[^»\n]*»|„[^“”\n]*[“”]")
_SINGLE_QUOTED = re.compile(r"(?<![\w'’])'[^'\n]*'(?![\w'’])|(?<![\w’])‘[^’\n]*’(?!\w)")
_TAG = re.compile(r"<(/?)([A-Za-z][\w.:\-]*)(?:\s[^<>]*)?(/?)>|<!--[\s\S]*?(?:-->|\Z)")
_LINE = re.compile(r"(?m)^.*$")
_CODE_LINE = re.compile(
    r"^\s*(?:\$ |% |> |>>> |#!|[{}\[\]])|^(?: {4}|\t)|[{};]\s*$"
    r"|==|=>|->|&&|\|\||\s\|\s|\$\(|\$\{|\w\(\)|\s=\s"
)
_COMMANDS = frozenset(
    "git ls cd cp mv rm mkdir rmdir touch cat less head tail grep rg find sed awk echo printf "
    "curl wget ssh scp sudo apt apt-get brew yum dnf pip pip3 uv python python3 node npm npx "
    "yarn pnpm bun deno make cmake ctest ninja cargo rustc go gcc g++ clang clang++ javac java "
    "mvn gradle docker podman kubectl helm terraform pytest tox ruff mypy black export source "
    "chmod chown tar zip unzip tmux kill ps top systemctl journalctl bash sh zsh llama-server "
    "ctxbudget claude opencode".split()
)


def protected_spans(text: str) -> list[Span]:
    """Sorted, merged spans of code, tags, URLs, paths, quotes, JSON and command lines."""
    spans: list[Span] = []
    for regex in (_FENCE, _INLINE_CODE, _URL, _DOUBLE_QUOTED, _SINGLE_QUOTED):
        spans.extend(m.span() for m in regex.finditer(text))
    spans.extend(m.span() for m in _TOKEN.finditer(text) if _is_pathish(m.group(0)))
    spans.extend(_tag_spans(text))
    spans.extend(_json_spans(text))
    spans.extend(_code_line_spans(text))
    return merge_spans(spans)


def _is_pathish(token: str) -> bool:
    return "/" in token or "\\" in token or "~" in token


def merge_spans(spans: list[Span]) -> list[Span]:
    """Sort spans and join overlapping or touching ones."""
    out: list[Span] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


_CLOSE_TAG = re.compile(r"</([A-Za-z][\w.:\-]*)\s*>")


def _tag_spans(text: str) -> list[Span]:
    closes: dict[str, list[int]] = {}
    for m in _CLOSE_TAG.finditer(text):
        closes.setdefault(m.group(1), []).append(m.start())
    spans: list[Span] = []
    covered = -1
    for m in _TAG.finditer(text):
        if m.start() < covered:
            continue
        if m.group(0).startswith("<!--") or m.group(1) or m.group(3):
            spans.append(m.span())
            continue
        name = m.group(2)
        starts = closes.get(name, [])
        at = bisect.bisect_left(starts, m.end())
        if at < len(starts):
            close = _CLOSE_TAG.match(text, starts[at])
            assert close is not None
            spans.append((m.start(), close.end()))
            covered = close.end()
        elif "-" in name or "_" in name:
            # An unclosed agent tag such as <system-reminder> guards everything after it.
            spans.append((m.start(), len(text)))
            covered = len(text)
        else:
            spans.append(m.span())
    return spans


def _json_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    last_end = -1
    for m in re.finditer(r"(?m)^[ \t]*([{\[])", text):
        if m.start() < last_end:
            continue
        last_end = _balanced_end(text, m.start(1))
        spans.append((m.start(), last_end))
    return spans


def _balanced_end(text: str, start: int) -> int:
    """End of the bracketed value starting at start (strings respected), or the end of the text."""
    depth = 0
    in_string = False
    escaped = False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def _code_line_spans(text: str) -> list[Span]:
    spans: list[Span] = []
    for m in _LINE.finditer(text):
        line = m.group(0)
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        if first in _COMMANDS or _CODE_LINE.search(line):
            spans.append(m.span())
    return spans
