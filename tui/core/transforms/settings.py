"""Settings of the request transforms (the [transforms] config section) and stabilizer pattern specs."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Scopes a stabilizer pattern may apply to.
SCOPES: tuple[str, ...] = ("system", "tools", "messages")

# File reading and editing tools: the agent copies exact text from their output into its next edit,
# so slimming (which strips trailing blanks and cuts) never touches them.
DEFAULT_SLIM_SKIP_TOOLS: tuple[str, ...] = (
    "Read",
    "read",
    "NotebookRead",
    "Edit",
    "edit",
    "MultiEdit",
    "Write",
    "write",
    "NotebookEdit",
    "*read_file*",
    "*read_text_file*",
    "*read_media_file*",
    "*read_multiple_files*",
    "*edit_file*",
    "*write_file*",
)


@dataclass(frozen=True)
class TransformSettings:
    """Which transforms run on forwarded requests and their limits; every field has a safe default."""

    enabled: list[str] = field(default_factory=lambda: ["stabilize"])
    stabilizer_builtins: list[str] = field(default_factory=lambda: ["cc_billing_version", "cc_billing_cch"])
    stabilizer_patterns: list[str] = field(default_factory=list)
    slim_max_chars: int = 20_000
    slim_max_lines: int = 400
    slim_head_fraction: float = 0.5
    slim_min_repeat: int = 3
    slim_skip_tools: list[str] = field(default_factory=lambda: list(DEFAULT_SLIM_SKIP_TOOLS))
    trim_min_chars: int = 400
    trim_keep_tools: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StabilizerPattern:
    """A regex whose matches are replaced by a constant, in the given scopes of a request."""

    name: str
    regex: re.Pattern[str]
    replacement: str
    scopes: tuple[str, ...] = ("system",)
    default_enabled: bool = False
    why: str = ""


class PatternSpecError(ValueError):
    """A stabilizer pattern spec from the config could not be used; the message says how to fix it."""


_SPEC_SCOPES = re.compile(r"^\s*\[([^\]]*)\]\s*")


def parse_pattern_spec(spec: str, index: int = 0) -> StabilizerPattern:
    """Parse `[system,messages] REGEX => REPLACEMENT` (scope list optional, default system)."""
    scopes: tuple[str, ...] = ("system",)
    rest = spec
    match = _SPEC_SCOPES.match(spec)
    if match:
        scopes = tuple(s.strip() for s in match.group(1).split(",") if s.strip())
        rest = spec[match.end() :]
        bad = [s for s in scopes if s not in SCOPES]
        if bad or not scopes:
            raise PatternSpecError(
                f"stabilizer_patterns[{index}]: unknown scope {bad or '[]'}; use any of {', '.join(SCOPES)}"
            )
    if " => " not in rest:
        raise PatternSpecError(
            f"stabilizer_patterns[{index}]: {spec!r} has no ' => '; write it as "
            "'[system] REGEX => REPLACEMENT'"
        )
    regex_text, replacement = rest.rsplit(" => ", 1)
    try:
        regex = re.compile(regex_text)
    except re.error as exc:
        raise PatternSpecError(f"stabilizer_patterns[{index}]: bad regex {regex_text!r}: {exc}") from exc
    try:
        regex.sub(replacement, "")  # compiles the template, so bad group references fail here
    except (re.error, IndexError) as exc:
        raise PatternSpecError(
            f"stabilizer_patterns[{index}]: bad replacement {replacement!r}: {exc}"
        ) from exc
    return StabilizerPattern(f"custom{index}", regex, replacement, scopes, True, "from config")
