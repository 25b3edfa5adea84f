"""One finding: what to change, what it saves, and the key or command that applies it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Kinds, in the order a tie is broken: an overflow failed a request outright.
KINDS: tuple[str, ...] = ("overflow", "mcp_unused", "cache_breaks", "tool_results", "history")


@dataclass(frozen=True)
class Finding:
    """A change worth making, with its saving in tokens (and seconds of prefill where it is time)."""

    kind: str
    title: str
    lines: tuple[str, ...]
    apply: str
    tokens_saved: int = 0
    seconds_saved: float | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The `findings --json` contract for one finding."""
        return {
            "kind": self.kind,
            "title": self.title,
            "lines": list(self.lines),
            "apply": self.apply,
            "tokens_saved": self.tokens_saved,
            "seconds_saved": self.seconds_saved,
            "data": self.data,
        }


@dataclass(frozen=True)
class FindingsReport:
    """Findings of one session, ranked, with what the figures rest on."""

    session: str
    requests: int
    prompt_per_second: float | None
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The `findings --json` document."""
        return {
            "session": self.session,
            "requests": self.requests,
            "prompt_per_second": self.prompt_per_second,
            "findings": [f.to_json() for f in self.findings],
            "notes": list(self.notes),
        }


def rank(findings: list[Finding]) -> tuple[Finding, ...]:
    """Overflows first (they failed a request), then by tokens saved, then seconds saved."""
    return tuple(
        sorted(
            findings,
            key=lambda f: (
                f.kind != "overflow",
                -f.tokens_saved,
                -(f.seconds_saved or 0.0),
                KINDS.index(f.kind),
            ),
        )
    )


def render_text(report: FindingsReport) -> str:
    """The human listing: one block per finding, best first."""
    speed = f", prompt speed {report.prompt_per_second:,.0f} tok/s" if report.prompt_per_second else ""
    lines = [f"session {report.session or '-'}: {report.requests} requests{speed}"]
    if not report.findings:
        lines.append("no findings: nothing in this session is worth changing")
    for i, finding in enumerate(report.findings, 1):
        lines.append("")
        lines.append(f"{i}. {finding.title}")
        lines.extend(f"   {line}" for line in finding.lines)
        lines.append(f"   apply: {finding.apply}")
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines)
