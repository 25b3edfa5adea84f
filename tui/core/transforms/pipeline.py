"""Run the enabled transforms in registry order, measure their token savings, and explain what they change."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tui.core.transforms.body_slots import layout_entries
from tui.core.transforms.model import TransformReport, TransformSavings
from tui.core.transforms.registry import check_names, make_transforms
from tui.core.transforms.settings import TransformSettings

if TYPE_CHECKING:  # tokens imports httpx; config loading (which imports this package) must stay light
    from tui.core.tokens import TokenCounter


class TransformPipeline:
    """The configured transforms, built once and applied to many requests."""

    def __init__(self, settings: TransformSettings) -> None:
        self.settings = settings
        self.transforms = make_transforms(settings)
        self.enabled = check_names(settings.enabled)

    def run(
        self, body: dict[str, Any], dialect: str, enabled: Sequence[str] | None = None
    ) -> tuple[dict[str, Any], list[TransformReport]]:
        """Apply the enabled transforms in order; a transform that fails is skipped and reported."""
        names = self.enabled if enabled is None else check_names(enabled)
        reports: list[TransformReport] = []
        for name in names:
            try:
                result = self.transforms[name].apply(body, dialect)
            except Exception as exc:  # noqa: BLE001 - a transform bug must never block a request
                reports.append(TransformReport(name, False, [f"failed, request left as it was: {exc!r}"]))
                continue
            reports.append(TransformReport(name, result.changed, result.details, result.edits))
            body = result.body
        return body, reports


def run_transforms(
    body: dict[str, Any], dialect: str, enabled: Sequence[str], settings: TransformSettings | None = None
) -> tuple[dict[str, Any], list[TransformReport]]:
    """Apply the named transforms to a body; the input is never mutated."""
    return TransformPipeline(settings or TransformSettings()).run(body, dialect, enabled)


def body_texts(body: dict[str, Any]) -> list[str]:
    """The prompt-bearing texts of a body, the unit token counts are summed over."""
    return [text for _, text in layout_entries(body)]


def measure_savings(
    body: dict[str, Any],
    dialect: str,
    counter: TokenCounter,
    enabled: Sequence[str],
    settings: TransformSettings | None = None,
) -> tuple[dict[str, Any], list[TransformSavings]]:
    """Run the transforms one by one and count the body's tokens before and after each."""
    pipeline = TransformPipeline(settings or TransformSettings())
    stages: list[dict[str, Any]] = [body]
    reports: list[TransformReport] = []
    for name in check_names(enabled):
        new_body, (report,) = pipeline.run(stages[-1], dialect, [name])
        stages.append(new_body)
        reports.append(report)
    stage_texts = [body_texts(stage) for stage in stages]
    unique = list(dict.fromkeys(t for texts in stage_texts for t in texts))
    counts = dict(zip(unique, counter.count_many(unique), strict=True))
    totals = [sum(counts[t] for t in texts) for texts in stage_texts]
    savings = [
        TransformSavings(r.name, r.changed, totals[i], totals[i + 1], r.details)
        for i, r in enumerate(reports)
    ]
    return stages[-1], savings


@dataclass(frozen=True)
class PrefixChange:
    """Where a transformed body first differs from the original, and whether that costs a re-processing."""

    where: str
    entry_index: int
    unchanged_chars: int
    reprocesses: bool


def changes_prefix(old_body: dict[str, Any], new_body: dict[str, Any]) -> PrefixChange | None:
    """None for equal prompts; else the first difference (it re-processes unless in the last message)."""
    old_entries = layout_entries(old_body)
    new_entries = layout_entries(new_body)
    same_chars = 0
    for i, (old, new) in enumerate(zip(old_entries, new_entries, strict=False)):
        if old != new:
            return PrefixChange(old[0], i, same_chars, not _in_last_message(old[0], old_body))
        same_chars += len(old[1])
    if len(old_entries) == len(new_entries):
        return None
    i = min(len(old_entries), len(new_entries))
    label = (old_entries if len(old_entries) > i else new_entries)[i][0]
    # One prompt is a prefix of the other: whatever the server cached is still usable.
    return PrefixChange(label, i, same_chars, False)


def _in_last_message(label: str, body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    return label.startswith(f"messages[{len(messages) - 1}]")


def unified_diff_preview(
    old_body: dict[str, Any],
    new_body: dict[str, Any],
    context: int = 2,
    max_lines: int = 400,
    width: int = 240,
) -> str:
    """A unified diff of the two prompts' texts, part by part, long lines shortened; '' when equal."""
    old_lines = _render(old_body, width)
    new_lines = _render(new_body, width)
    diff = list(difflib.unified_diff(old_lines, new_lines, "original", "transformed", n=context, lineterm=""))
    if len(diff) > max_lines:
        diff = [*diff[:max_lines], f"… {len(diff) - max_lines} more diff lines"]
    return "\n".join(diff)


def _render(body: dict[str, Any], width: int) -> list[str]:
    lines: list[str] = []
    for label, text in layout_entries(body):
        lines.append(f"### {label}")
        for line in text.split("\n"):
            lines.append(line if len(line) <= width else f"{line[:width]}… (+{len(line) - width} chars)")
    return lines
