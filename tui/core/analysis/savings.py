"""Token accounting of the proxy's rewrites, done in the analysis worker (never on the hot path).

The hot path already ran the transforms; its note says which texts each one rewrote. With the forwarded
body (parsed once, for the anatomy) that is enough: the prompt's total is counted once, and each
transform's before/after totals follow from the texts it changed, walking back from the forwarded body.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tui.core.actions.counting import count_texts
from tui.core.anatomy.pieces import dumps
from tui.core.records import RewriteSavings, TransformSaving
from tui.core.tokens import TokenCounter
from tui.core.transforms.body_slots import layout_entries

if TYPE_CHECKING:
    from tui.core.analysis.capture import RewriteNote

log = logging.getLogger(__name__)


def savings_for(
    note: RewriteNote | None, counter: TokenCounter | None, forwarded: dict[str, Any] | None = None
) -> RewriteSavings | None:
    """Count what the MCP filter and the transforms removed; None when no rewrite ran.

    `forwarded` is the parsed body that was sent upstream (None: not available, transforms unmeasured).
    """
    if note is None or note.error is not None:
        return None
    mcp_saved: int | None = None
    if note.mcp_removed:
        mcp_saved = count_texts([dumps(t) for t in note.mcp_removed], counter).total
    transforms = tuple(TransformSaving(name) for name in note.transforms)
    # Nothing changed: nothing saved. Changed but not countable (bodies dropped, no counter): unknown.
    transform_saved: int | None = 0 if note.transforms and not note.changed else None
    if note.changed and note.edits and forwarded is not None and counter is not None:
        try:
            transforms, transform_saved = _measure(note, forwarded, counter)
        except Exception:  # a failed count leaves the savings unmeasured, the row is still journaled
            log.exception("could not measure transform savings")
    folded = note.compaction_folded
    return RewriteSavings(transforms, transform_saved, mcp_saved, note.compaction_saved, folded)


def _measure(
    note: RewriteNote, forwarded: dict[str, Any], counter: TokenCounter
) -> tuple[tuple[TransformSaving, ...], int]:
    """Per-transform totals of the prompt before and after, walking back from the forwarded body."""
    final_texts = [text for _, text in layout_entries(forwarded)]
    edited = (t for _, edits in note.edits for e in edits for t in (e.before, e.after))
    unique = list(dict.fromkeys([*final_texts, *edited]))
    counts = dict(zip(unique, counter.count_many(unique), strict=True))
    after = sum(counts[t] for t in final_texts)
    totals: dict[str, tuple[int, int]] = {}
    for name, edits in reversed(note.edits):
        before = after - sum(counts[e.after] for e in edits) + sum(counts[e.before] for e in edits)
        totals[name] = (before, after)
        after = before
    savings = tuple(
        TransformSaving(name, *totals[name]) if name in totals else TransformSaving(name)
        for name in note.transforms
    )
    return savings, sum(s.saved for s in savings)
