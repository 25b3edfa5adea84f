"""Every request transform, once: its name, what it does, how it is built; read by pipeline, CLI and UI.

The transform modules load only when a transform is built, so listing the names stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tui.core.transforms.settings import TransformSettings

if TYPE_CHECKING:
    from tui.core.transforms.model import Transform


def _stabilizer(settings: TransformSettings) -> Transform:
    from tui.core.transforms.stabilizer import CacheStabilizer

    return CacheStabilizer.from_settings(settings)


def _trimmer(settings: TransformSettings) -> Transform:
    from tui.core.transforms.trim_tools import ToolDescriptionTrimmer

    return ToolDescriptionTrimmer.from_settings(settings)


def _slimmer(settings: TransformSettings) -> Transform:
    from tui.core.transforms.slimming import ToolResultSlimmer

    return ToolResultSlimmer.from_settings(settings)


def _prose(settings: TransformSettings) -> Transform:
    from tui.core.transforms.prose import ProseCompressor

    return ProseCompressor()


def _clear_slim_cache() -> None:
    from tui.core.transforms.slimming import clear_cache

    clear_cache()


def _clear_prose_cache() -> None:
    from tui.core.transforms.prose import clear_cache

    clear_cache()


@dataclass(frozen=True)
class TransformEntry:
    """One transform: its name, a one-line description, its builder and its result cache's reset."""

    name: str
    description: str
    build: Callable[[TransformSettings], Transform]
    clear_cache: Callable[[], None] | None = None


# In run order: prefix-side transforms first, so later ones see the stabilized text.
REGISTRY: tuple[TransformEntry, ...] = (
    TransformEntry(
        "stabilize",
        "normalize volatile prefix content (Claude Code billing hash) so the cache is reused",
        _stabilizer,
    ),
    TransformEntry(
        "trim_descriptions",
        "cut long tool descriptions to their first paragraph (names and parameter schemas kept)",
        _trimmer,
    ),
    TransformEntry(
        "slim_results",
        "strip ANSI, fold repeated lines, cut long tool outputs to head + tail",
        _slimmer,
        _clear_slim_cache,
    ),
    TransformEntry(
        "compress_prose",
        "drop articles and filler words in user-typed text; code, paths, URLs, quotes, tags kept",
        _prose,
        _clear_prose_cache,
    ),
)

TRANSFORM_ORDER: tuple[str, ...] = tuple(entry.name for entry in REGISTRY)
DESCRIPTIONS: dict[str, str] = {entry.name: entry.description for entry in REGISTRY}


def make_transforms(settings: TransformSettings) -> dict[str, Transform]:
    """Every transform configured from the settings, by name (raises ValueError on a bad pattern)."""
    return {entry.name: entry.build(settings) for entry in REGISTRY}


def check_names(enabled: Iterable[str]) -> list[str]:
    """The enabled names in run order; raises ValueError naming the unknown ones and the valid ones."""
    names = list(enabled)
    unknown = [n for n in names if n not in TRANSFORM_ORDER]
    if unknown:
        raise ValueError(f"unknown transforms {unknown}; valid: {', '.join(TRANSFORM_ORDER)}")
    return [n for n in TRANSFORM_ORDER if n in names]


def clear_caches() -> None:
    """Forget remembered transform results (for benches and tests)."""
    for entry in REGISTRY:
        if entry.clear_cache is not None:
            entry.clear_cache()


def validate_settings(settings: TransformSettings) -> None:
    """Raise ValueError naming the [transforms] key and the fix when a setting cannot be used."""
    limits = (
        ("slim_max_chars", settings.slim_max_chars >= 200, "at least 200"),
        ("slim_max_lines", settings.slim_max_lines >= 3, "at least 3"),
        ("slim_head_fraction", 0.05 <= settings.slim_head_fraction <= 0.95, "between 0.05 and 0.95"),
        ("slim_min_repeat", settings.slim_min_repeat >= 2, "at least 2"),
        ("trim_min_chars", settings.trim_min_chars >= 0, "0 or more"),
    )
    for key, ok, fix in limits:
        if not ok:
            raise ValueError(f"[transforms] {key}: {getattr(settings, key)!r} is out of range; use {fix}")
    try:
        make_transforms(settings)
        check_names(settings.enabled)
    except ValueError as exc:
        raise ValueError(f"[transforms] {exc}") from exc
