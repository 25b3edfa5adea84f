"""Collect the doctor's facts: one server poll, the GGUF header, GPU or RAM, and the server log head."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from tui.core.config import Settings
from tui.core.doctor.agent_need import agent_min_request, agent_window
from tui.core.doctor.model import DoctorFacts, Launch
from tui.core.doctor.presets import gather_presets
from tui.core.gguf import GgufError, GgufInfo, KvEstimate, estimate_kv, read_gguf_info
from tui.core.logs.events import ContextParam, LogEvent, ServerInit
from tui.core.logs.parse import parse_text
from tui.core.poll.buffers import buffers_from_events
from tui.core.poll.gpu import GpuSampler
from tui.core.poll.server_poller import ServerPoller
from tui.core.poll.snapshots import ServerSnapshot

LOG_HEAD_BYTES = 4 * 1024 * 1024


def launch_from_settings(
    settings: Settings,
    *,
    server_url: str | None = None,
    model: str | None = None,
    ctx_size: int | None = None,
    parallel: int | None = None,
) -> Launch:
    """The launch to check: config values with CLI overrides."""
    server, agent = settings.server, settings.agent
    window, window_source = agent_window(agent.client, agent.context_window)
    return Launch(
        url=server_url or server.url,
        model=model if model is not None else server.model,
        ctx_size=ctx_size if ctx_size is not None else server.ctx_size,
        parallel=parallel if parallel is not None else server.parallel,
        cache_type_k=server.cache_type_k,
        cache_type_v=server.cache_type_v,
        flash_attn=server.flash_attn,
        n_gpu_layers=server.n_gpu_layers,
        kv_unified=getattr(server, "kv_unified", None),  # optional [server] kv_unified
        log_file=server.log_file,
        agent_client=agent.client,
        agent_window=window,
        agent_window_source=window_source,
        extra_args=tuple(server.extra_args),
    )


def context_length_override(extra_args: Sequence[str]) -> int | None:
    """N from `--override-kv <arch>.context_length=int:N` in llama-server arguments (the last one wins)."""
    found: int | None = None
    args = list(extra_args)
    for index, arg in enumerate(args):
        if arg == "--override-kv" and index + 1 < len(args):
            values = args[index + 1]
        elif arg.startswith("--override-kv="):
            values = arg.split("=", 1)[1]
        else:
            continue
        for item in values.split(","):
            key, _, typed = item.partition("=")
            kind, _, value = typed.partition(":")
            if key.strip().endswith(".context_length") and kind == "int" and value.strip().isdigit():
                found = int(value)
    return found


def read_log_head(path: str) -> tuple[str | None, str]:
    """The first few MiB of the server log (startup lines), or None and why."""
    if not path:
        return None, "not configured"
    file = Path(path).expanduser()
    try:
        with file.open("rb") as handle:
            return handle.read(LOG_HEAD_BYTES).decode("utf-8", "replace"), ""
    except FileNotFoundError:
        return None, "file not found"
    except OSError as exc:
        return None, f"cannot read ({exc.strerror})"


def mem_available(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """MemAvailable in bytes (Linux), None elsewhere."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _read_model(path: str) -> tuple[GgufInfo | None, str]:
    if not path:
        return None, "no model to check: set [server] model or pass --model"
    try:
        return read_gguf_info(path), ""
    except GgufError as exc:
        return None, str(exc)


def _estimate(
    launch: Launch,
    info: GgufInfo | None,
    server: ServerSnapshot | None,
    events: tuple[LogEvent, ...],
    mode: str,
) -> KvEstimate | None:
    if info is None:
        return None
    fa = launch.flash_attn.lower() not in ("off", "false", "0", "disabled")
    try:
        if mode == "running" and server is not None and server.n_slots:
            inits = [e for e in events if isinstance(e, ServerInit)]
            unified = inits[-1].kv_unified if inits and inits[-1].kv_unified is not None else None
            if unified is None:
                unified = server.n_slots > 1 and launch.parallel <= 0
            # The log's n_ctx is exact; n_ctx_slot may already be capped at n_ctx_train.
            logged = [
                e.value for e in events if isinstance(e, ContextParam) and e.name == "n_ctx" and e.value
            ]
            ctx: int = logged[-1] or 0 if logged else server.n_ctx_slot * (1 if unified else server.n_slots)
            return estimate_kv(
                info,
                ctx,
                server.n_slots,
                cache_type_k=launch.cache_type_k,
                cache_type_v=launch.cache_type_v,
                unified=unified,
                flash_attn=fa,
            )
        return estimate_kv(
            info,
            launch.ctx_size,
            launch.parallel,
            unified=launch.kv_unified,
            cache_type_k=launch.cache_type_k,
            cache_type_v=launch.cache_type_v,
            flash_attn=fa,
        )
    except ValueError:  # unknown cache type: the v_cache check reports it
        return None


async def gather_facts(
    launch: Launch,
    *,
    api_key: str = "",
    prefer_planned: bool = False,
    gpu_enabled: bool = True,
    nvml: Any | None = None,
    timeout: float = 3.0,
    journal: Path | None = None,
) -> DoctorFacts:
    """Poll the server once and read the model, GPU and log; planned mode when the server is down."""
    poller = ServerPoller(launch.url, api_key, timeout=timeout, max_backoff=timeout)
    try:
        server = await poller.poll_once()
    finally:
        await poller.aclose()
    reachable = server.state in ("up", "sleeping") and not server.error
    mode: Literal["planned", "running"] = "running" if reachable and not prefer_planned else "planned"
    model_path = launch.model
    if mode == "running" and not model_path:
        model_path = server.model_path
    presets = gather_presets(server.models) if mode == "running" else ()
    if mode == "running" and not model_path and server.models:
        # A router: the model in front (loaded, the one requests went to last) stands for the server.
        front = next((p for p in presets if p.model.id == server.model), None)
        model_path = front.path if front is not None else ""
    info, gguf_error = _read_model(model_path)
    override = context_length_override(launch.extra_args)
    if info is not None and override and mode == "planned":
        info = dataclasses.replace(info, n_ctx_train=override)  # what the launch's server will use
    head, log_error = read_log_head(launch.log_file)
    events = tuple(parse_text(head)) if head else ()
    if mode == "running" and server.models and server.model and head:
        # A router's log: the model in front's own child lines (its startup line says kv_unified).
        from tui.core.logs.monitor import events_of_model

        ports = ((m.id, m.args) for m in server.models)
        events = events_of_model(head, server.model, ports) or events
    sampler = GpuSampler(nvml, server_url=launch.url if mode == "running" else None, enabled=gpu_enabled)
    try:
        gpu = sampler.sample(buffers_from_events(events))
    finally:
        sampler.close()
    return DoctorFacts(
        launch=launch,
        mode=mode,
        server=server,
        gguf=info,
        gguf_error=gguf_error,
        kv=_estimate(launch, info, server, events, mode),
        gpu=gpu,
        mem_available=mem_available(),
        log_head=head,
        log_error=log_error,
        log_events=events,
        agent_need=agent_min_request(journal, launch.agent_client),
        presets=presets,
    )
