"""`ctxbudget doctor`: check a planned or running llama-server setup against the agent's needs."""

from __future__ import annotations

from typing import Any

from tui.core.config import Settings
from tui.core.doctor.checks import run_checks
from tui.core.doctor.gather import gather_facts, launch_from_settings
from tui.core.doctor.model import CheckResult, DoctorFacts, Launch
from tui.core.doctor.report import exit_code, render_json, render_text

__all__ = [
    "CheckResult",
    "DoctorFacts",
    "Launch",
    "diagnose",
    "exit_code",
    "gather_facts",
    "launch_from_settings",
    "render_json",
    "render_text",
    "run_checks",
]


async def diagnose(
    settings: Settings,
    *,
    server_url: str | None = None,
    model: str | None = None,
    ctx_size: int | None = None,
    parallel: int | None = None,
    nvml: Any | None = None,
) -> tuple[DoctorFacts, list[CheckResult]]:
    """Gather facts for the configured (or overridden) launch and run every check."""
    launch = launch_from_settings(settings, server_url=server_url, model=model, ctx_size=ctx_size,
                                  parallel=parallel)
    prefer_planned = server_url is None and any(v is not None for v in (model, ctx_size, parallel))
    facts = await gather_facts(launch, api_key=settings.server.api_key, prefer_planned=prefer_planned,
                               gpu_enabled=settings.gpu.enabled, nvml=nvml,
                               journal=settings.journal_path())
    return facts, run_checks(facts)
