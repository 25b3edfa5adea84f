"""Which layers use sliding-window attention, mirroring each architecture's loader in llama.cpp."""

from __future__ import annotations

from collections.abc import Sequence

# general.architecture -> (default period, dense_first, n_swa default when the GGUF has none, needs key)
# from `load_swa_pattern(ml, period, dense_first)` in llama.cpp src/models/<arch>.cpp (b11434).
# "needs key": the arch only enables SWA when <arch>.attention.sliding_window is present and > 0.
ARCH_SWA: dict[str, tuple[int, bool, int, bool]] = {
    "gemma2": (2, False, 4096, False),
    "gemma3": (6, False, 0, True),
    "gemma3n": (5, False, 0, False),
    "gemma-embedding": (6, False, 0, False),
    "cohere2": (4, False, 0, False),
    "cohere2moe": (4, True, 0, False),
    "gpt-oss": (2, False, 0, False),
    "olmo2": (4, False, 0, True),
    "exaone4": (4, False, 4096, True),
    "exaone-moe": (4, False, 0, False),
    "llama4": (4, False, 8192, False),
    "afmoe": (4, False, 0, True),
    "mellum": (4, False, 0, True),
    "muse-glimmer": (4, False, 0, False),
    "plamo3": (8, False, 0, True),
    "smallthinker": (4, True, 0, True),
    "laguna": (4, True, 0, True),
}


def pattern_layers(n_layer: int, period: int, dense_first: bool = False) -> tuple[bool, ...]:
    """llama_hparams::set_swa_pattern: True marks a sliding-window layer (period 0 = every layer)."""
    if dense_first:
        return tuple(period == 0 or il % period != 0 for il in range(n_layer))
    return tuple(period == 0 or il % period < period - 1 for il in range(n_layer))


def swa_layers(
    arch: str, n_layer: int, n_swa: int, pattern: int | Sequence[bool] | None
) -> tuple[tuple[bool, ...], int, bool]:
    """Per-layer SWA flags, the effective window and whether the pattern is known for this arch."""
    if isinstance(pattern, Sequence) and not isinstance(pattern, str | bytes):
        flags = tuple(bool(x) for x in pattern)[:n_layer]
        flags = flags + (False,) * (n_layer - len(flags))
        return (flags, n_swa, True) if n_swa > 0 and any(flags) else ((False,) * n_layer, 0, True)
    rule = ARCH_SWA.get(arch)
    if rule is None:
        if n_swa > 0 and isinstance(pattern, int):
            return pattern_layers(n_layer, pattern), n_swa, True
        # Unknown arch with a window but no pattern: size as full attention (an over-estimate).
        return (False,) * n_layer, n_swa, n_swa <= 0
    period, dense_first, default_swa, needs_key = rule
    if needs_key and n_swa <= 0:
        return (False,) * n_layer, 0, True
    window = n_swa if n_swa > 0 else default_swa
    if window <= 0:
        return (False,) * n_layer, 0, True
    if isinstance(pattern, int):
        period = pattern
    return pattern_layers(n_layer, period, dense_first), window, True
