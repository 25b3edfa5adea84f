"""Request transforms that make prompts cheaper for llama-server: pure functions over parsed bodies."""

from __future__ import annotations

from tui.core.transforms.model import TransformReport, TransformResult, TransformSavings
from tui.core.transforms.pipeline import (
    TRANSFORM_ORDER,
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
from tui.core.transforms.settings import PatternSpecError, TransformSettings, parse_pattern_spec
from tui.core.transforms.slimming import slim_text
from tui.core.transforms.stabilizer import BUILTIN_PATTERNS
from tui.core.transforms.suggest import suggest_pattern, suggest_pattern_spec

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
