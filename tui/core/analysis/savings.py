"""Token accounting of the proxy's rewrites, done in the analysis worker (never on the hot path)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tui.core.actions.counting import count_texts
from tui.core.anatomy.pieces import dumps
from tui.core.records import RewriteSavings, TransformSaving
from tui.core.tokens import TokenCounter

if TYPE_CHECKING:  # the proxy package imports the pipeline; avoid the cycle at runtime
    from tui.core.analysis.capture import RewriteNote

log = logging.getLogger(__name__)


def savings_for(note: RewriteNote | None, counter: TokenCounter | None) -> RewriteSavings | None:
    """Count what the MCP filter and the transforms removed; None when no rewrite ran."""
    if note is None or note.error is not None:
        return None
    mcp_saved: int | None = None
    if note.mcp_removed:
        mcp_saved = count_texts([dumps(t) for t in note.mcp_removed], counter).total
    transforms = tuple(TransformSaving(name) for name in note.transforms)
    # Nothing changed: nothing saved. Changed but not countable (bodies dropped, no counter): unknown.
    transform_saved: int | None = 0 if note.transforms and not note.changed else None
    if note.changed and note.transform_input is not None and counter is not None:
        try:
            transforms, transform_saved = _measure(note, counter)
        except Exception:  # a failed count leaves the savings unmeasured, the row is still journaled
            log.exception("could not measure transform savings")
    return RewriteSavings(transforms, transform_saved, mcp_saved, note.compaction_saved)


def _measure(note: RewriteNote, counter: TokenCounter) -> tuple[tuple[TransformSaving, ...], int]:
    import orjson

    from tui.core.transforms.pipeline import measure_savings

    assert note.transform_input is not None
    body = orjson.loads(note.transform_input)
    _, measured = measure_savings(body, note.dialect, counter, note.transforms, note.transform_settings)
    by_name = {m.name: m for m in measured}
    savings = tuple(
        TransformSaving(name, by_name[name].tokens_before, by_name[name].tokens_after)
        if name in by_name
        else TransformSaving(name)
        for name in note.transforms
    )
    return savings, sum(s.saved for s in savings)
