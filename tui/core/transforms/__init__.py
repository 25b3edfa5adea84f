"""Request transforms that make prompts cheaper for llama-server: pure functions over parsed bodies.

Names load lazily: config loading imports the settings module, and must not pay for every transform.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tui.core.transforms.model import TransformReport, TransformResult, TransformSavings
    from tui.core.transforms.pipeline import (
        PrefixChange,
        TransformPipeline,
        changes_prefix,
        check_names,
        clear_caches,
        make_transforms,
        measure_savings,
        run_transforms,
        unified_diff_preview,
        validate_settings,
    )
    from tui.core.transforms.prose import compress_prose, prose_sample
    from tui.core.transforms.settings import (
        TRANSFORM_ORDER,
        PatternSpecError,
        TransformSettings,
        parse_pattern_spec,
    )
    from tui.core.transforms.slimming import slim_text
    from tui.core.transforms.stabilizer import BUILTIN_PATTERNS
    from tui.core.transforms.suggest import suggest_pattern, suggest_pattern_spec

_HOMES: dict[str, str] = {
    "TransformReport": "model",
    "TransformResult": "model",
    "TransformSavings": "model",
    "TRANSFORM_ORDER": "settings",
    "PrefixChange": "pipeline",
    "TransformPipeline": "pipeline",
    "changes_prefix": "pipeline",
    "check_names": "pipeline",
    "clear_caches": "pipeline",
    "make_transforms": "pipeline",
    "measure_savings": "pipeline",
    "run_transforms": "pipeline",
    "unified_diff_preview": "pipeline",
    "validate_settings": "pipeline",
    "compress_prose": "prose",
    "prose_sample": "prose",
    "PatternSpecError": "settings",
    "TransformSettings": "settings",
    "parse_pattern_spec": "settings",
    "slim_text": "slimming",
    "BUILTIN_PATTERNS": "stabilizer",
    "suggest_pattern": "suggest",
    "suggest_pattern_spec": "suggest",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


__all__ = [
    "BUILTIN_PATTERNS",
    "TRANSFORM_ORDER",
    "PatternSpecError",
    "PrefixChange",
    "TransformPipeline",
    "TransformReport",
    "TransformResult",
    "TransformSavings",
    "TransformSettings",
    "changes_prefix",
    "check_names",
    "clear_caches",
    "compress_prose",
    "make_transforms",
    "measure_savings",
    "parse_pattern_spec",
    "prose_sample",
    "run_transforms",
    "slim_text",
    "suggest_pattern",
    "suggest_pattern_spec",
    "unified_diff_preview",
    "validate_settings",
]
