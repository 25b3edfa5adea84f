"""Explain why a request could not reuse the server's prompt cache: where it first differs from the last."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tui.core.anatomy.pieces import Piece, parse_billing
from tui.core.records import CacheBreak
from tui.core.tokens import text_hash

# llama-server rewrites the billing line's cch=XXXXX to fffff so it does not break the cache (PR #21793).
_CCH_RE = re.compile(r"cch=[^;]*;")


@dataclass(frozen=True)
class Entry:
    """One piece of a request's prefix: where it sits, a hash of its content and its tokens."""

    section: str
    key: str
    label: str
    digest: bytes
    tokens: int
    billing: tuple[tuple[str, str], ...] = ()
    message_index: int | None = None


@dataclass(frozen=True)
class Signature:
    """A request's prefix in prompt order, cheap to compare with the next request's."""

    entries: tuple[Entry, ...]
    message_count: int
    server_tokens: int | None = None  # the server's prompt tokens (template overhead included), if known


def signature(
    pieces: list[Piece], tokens: list[int], message_count: int, server_tokens: int | None = None
) -> Signature:
    """Per-piece content hashes (billing line with cch normalised as the server does)."""
    entries: list[Entry] = []
    for piece, count in zip(pieces, tokens, strict=True):
        text = piece.text if piece.fixed_tokens is None else piece.label
        billing = parse_billing(text) if piece.section == "system" else {}
        if billing:
            text = _CCH_RE.sub("cch=fffff;", text)
        entries.append(
            Entry(
                piece.section,
                piece.key,
                piece.label,
                text_hash(text),
                count,
                tuple(billing.items()),
                piece.message_index,
            )
        )
    return Signature(tuple(entries), message_count, server_tokens)


def _first_difference(prev: tuple[Entry, ...], cur: tuple[Entry, ...]) -> int | None:
    for i, (a, b) in enumerate(zip(prev, cur, strict=False)):
        if a.key != b.key or a.digest != b.digest:
            return i
    return None if len(cur) >= len(prev) else len(cur)


def _names(entries: tuple[Entry, ...]) -> list[str]:
    return [e.key for e in entries if e.section == "tools"]


def _short_list(names: list[str], sign: str, limit: int = 4) -> list[str]:
    shown = [sign + n for n in names[:limit]]
    if len(names) > limit:
        shown.append(f"{sign}{len(names) - limit} more")
    return shown


def _describe_tools(prev: Signature, cur: Signature, i: int) -> tuple[str, str]:
    before, after = _names(prev.entries), _names(cur.entries)
    if before != after:
        removed = [n for n in before if n not in set(after)]
        added = [n for n in after if n not in set(before)]
        if not removed and not added:
            return "tools", "tool order changed"
        return "tools", "tool list changed: " + " ".join(_short_list(removed, "-") + _short_list(added, "+"))
    entry = cur.entries[i]
    index = after.index(entry.key)
    return f"tools[{index}]", f"tools[{index}] schema changed ({entry.key})"


def _describe_system(a: Entry | None, b: Entry | None) -> tuple[str, str]:
    if a is None or b is None or a.key != b.key:
        either = b or a
        label = either.label if either is not None else "system"
        return label, f"system blocks changed at {label}"
    if a.billing and b.billing:
        old, new = dict(a.billing), dict(b.billing)
        changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if "cc_version" in changed:
            return b.label, f"{b.label} changed: cc_version hash"
        return b.label, f"{b.label} changed: billing header {', '.join(changed) or 'text'}"
    return b.label, f"{b.label} changed"


# Below this share of the previous prompt reused, an unchanged prefix counts as a server-side miss.
SERVER_MISS_SHARE = 0.5


def in_server_tokens(sig: Signature, upto: int) -> int:
    """Tokens of the first `upto` entries in the server's count: the template's tokens (server count minus
    parts) are spread evenly over the parts, as each part gets its own role markers or schema wrapping."""
    parts = sum(e.tokens for e in sig.entries[:upto])
    overhead = (sig.server_tokens or 0) - sum(e.tokens for e in sig.entries)
    if overhead <= 0 or not sig.entries:
        return parts
    return parts + round(overhead * upto / len(sig.entries))


def _server_miss(prev: Signature, server_reused: int | None) -> CacheBreak | None:
    expected = prev.server_tokens
    if server_reused is None or not expected or server_reused >= expected * SERVER_MISS_SHARE:
        return None
    return CacheBreak(
        "server cache",
        f"prefix unchanged, but the server reused {server_reused:,} of {expected:,} tokens:"
        " its cache of this conversation was lost (evicted, restarted or not kept)",
        expected,
        server_reused,
        cause="server",
    )


def explain(prev: Signature, cur: Signature, server_reused: int | None) -> CacheBreak | None:
    """None when `cur` only appends to `prev` and the server reused it; else why the cache broke."""
    i = _first_difference(prev.entries, cur.entries)
    if i is None:
        return _server_miss(prev, server_reused)
    reusable = in_server_tokens(cur, i)
    a = prev.entries[i] if i < len(prev.entries) else None
    b = cur.entries[i] if i < len(cur.entries) else None
    sections = {e.section for e in (a, b) if e is not None}
    if "system" in sections:
        where, text = _describe_system(a, b)
    elif "tools" in sections:
        where, text = _describe_tools(prev, cur, i)
    else:
        either = a or b
        index = either.message_index if either is not None else None
        where = f"messages[{index}]"
        if cur.message_count < prev.message_count or b is None:
            text = (
                f"messages truncated/compacted ({prev.message_count} -> {cur.message_count} messages,"
                f" first difference at message {index})"
            )
        else:
            text = f"message {index} edited"
    return CacheBreak(where, text, reusable, server_reused)
