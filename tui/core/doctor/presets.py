"""Router mode: check every model preset the router offers (its file, its context, its last load)."""

from __future__ import annotations

from typing import Literal

from tui.core.doctor.model import CheckResult, PresetFacts
from tui.core.gguf import GgufError, GgufInfo, read_gguf_info
from tui.core.poll.router import preset_value
from tui.core.poll.snapshots import RouterModel

CHECK = "presets"


def gather_presets(models: tuple[RouterModel, ...]) -> tuple[PresetFacts, ...]:
    """Read each preset's GGUF header (a few KiB each); presets without --model are left unread."""
    out: list[PresetFacts] = []
    for model in models:
        path = preset_value(model, "model", "m") or ""
        ctx = preset_value(model, "ctx-size", "c")
        info: GgufInfo | None = None
        error = "" if path else "the preset names no --model file"
        if path:
            try:
                info = read_gguf_info(path)
            except GgufError as exc:
                error = str(exc)
        out.append(PresetFacts(model, path, info, error, int(ctx) if ctx and ctx.isdigit() else None))
    return tuple(out)


def _problem(preset: PresetFacts) -> tuple[str, str] | None:
    """("fail" | "warn", what is wrong) for one preset, or None when it is fine."""
    model = preset.model
    if model.status == "failed":
        code = f" (exit code {model.exit_code})" if model.exit_code is not None else ""
        why = f"; {preset.gguf_error}" if preset.gguf_error else ""
        return "fail", f"{model.id}: its last load failed{code}{why}"
    if preset.gguf_error:
        return "fail", f"{model.id}: {preset.gguf_error}"
    train = preset.gguf.n_ctx_train if preset.gguf is not None else None
    if preset.ctx_size and train and preset.ctx_size > train:
        return "warn", f"{model.id}: --ctx-size {preset.ctx_size:,} exceeds its n_ctx_train {train:,}"
    return None


def _state(preset: PresetFacts) -> str:
    model = preset.model
    size = f" {model.n_slots}×{model.n_ctx_slot:,}" if model.n_slots and model.n_ctx_slot else ""
    return f"{model.id} {model.status}{size}"


def check_presets(presets: tuple[PresetFacts, ...]) -> CheckResult:
    """Fail when a preset's model cannot load (bad file, failed load), warn on a context past training."""
    problems = [p for p in (_problem(x) for x in presets) if p is not None]
    fine = [_state(x) for x in presets if _problem(x) is None]
    listed = f"{len(presets)} preset(s); ok: {', '.join(fine) or 'none'}"
    if not problems:
        return CheckResult(CHECK, "pass", listed)
    worst: Literal["warn", "fail"] = "fail" if any(kind == "fail" for kind, _ in problems) else "warn"
    message = "; ".join(text for _, text in problems) + f" ({listed})"
    fix = (
        "fix the preset's model path or file (--models-dir / --models-preset), then load it again; "
        "the router log holds the failed instance's output"
        if worst == "fail"
        else "lower that preset's ctx-size to its n_ctx_train, or extend it with YaRN"
    )
    return CheckResult(CHECK, worst, message, fix)
