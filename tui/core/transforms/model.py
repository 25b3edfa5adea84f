"""Result types and the protocol every request transform follows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

DIALECTS: tuple[str, ...] = ("anthropic", "openai")


@dataclass(frozen=True, slots=True)
class TextEdit:
    """One prompt text a transform rewrote, before and after."""

    before: str
    after: str


@dataclass(frozen=True)
class TransformResult:
    """What one transform made of a body: the new body (the input when unchanged) and what it did."""

    body: dict[str, Any]
    changed: bool
    details: list[str] = field(default_factory=list)
    edits: tuple[TextEdit, ...] = ()


@dataclass(frozen=True)
class TransformReport:
    """One transform's outcome inside a run, as shown to the user, with the texts it rewrote."""

    name: str
    changed: bool
    details: list[str] = field(default_factory=list)
    edits: tuple[TextEdit, ...] = ()


@dataclass(frozen=True)
class TransformSavings:
    """Tokens of the request before and after one transform (counted by the caller's counter)."""

    name: str
    changed: bool
    tokens_before: int
    tokens_after: int
    details: list[str] = field(default_factory=list)

    @property
    def saved(self) -> int:
        """Tokens removed by this transform (negative when it added some)."""
        return self.tokens_before - self.tokens_after


class Transform(Protocol):
    """A pure rewrite of a parsed request body; never mutates its input, passes unknown shapes untouched."""

    name: str
    default_enabled: bool

    def apply(self, body: dict[str, Any], dialect: str) -> TransformResult: ...
