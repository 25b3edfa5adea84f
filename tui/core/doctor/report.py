"""Render doctor results as aligned text lines or JSON, and the exit code."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tui.core.doctor.model import CheckResult, DoctorFacts

_LABEL = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}


def render_text(results: Sequence[CheckResult], facts: DoctorFacts | None = None) -> str:
    """One line per check, with its fix indented underneath."""
    lines: list[str] = []
    if facts is not None:
        what = f"running llama-server at {facts.launch.url}" if facts.mode == "running" else "planned launch"
        lines.append(f"ctxbudget doctor: {what}")
    width = max((len(r.check) for r in results), default=0)
    for result in results:
        lines.append(f"{_LABEL[result.status]}  {result.check.ljust(width)}  {result.message}")
        if result.fix:
            lines.append(f"{'':4}  {'':{width}}  fix: {result.fix}")
    fails = sum(r.status == "fail" for r in results)
    warns = sum(r.status == "warn" for r in results)
    skipped = sum(r.status == "skip" for r in results)
    tail = f", {skipped} skipped" if skipped else ""
    lines.append(f"{len(results)} checks: {fails} failed, {warns} warnings{tail}")
    return "\n".join(lines)


def render_json(results: Sequence[CheckResult]) -> str:
    """The `--json` output: a list of {"check","status","message","fix"}."""
    return json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False)


def exit_code(results: Sequence[CheckResult]) -> int:
    """1 when any check failed, else 0."""
    return 1 if any(r.status == "fail" for r in results) else 0
