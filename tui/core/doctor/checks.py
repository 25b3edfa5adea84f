"""The doctor's checks: pure functions from DoctorFacts to pass/warn/fail results with fixes."""

from __future__ import annotations

import re
from collections.abc import Callable

from tui.core.doctor.agent_need import CLAUDE_DEFAULT_WINDOW
from tui.core.doctor.model import CheckResult, DoctorFacts
from tui.core.doctor.presets import check_presets
from tui.core.doctor.template_check import check_template
from tui.core.gguf.kv_estimate import CACHE_TYPE_BYTES
from tui.core.logs.events import ContextParam, FlashAttention, KvCacheSize, ServerInit, TrainContextCapped
from tui.core.logs.state import ServerFacts
from tui.core.poll.kv_sharing import kv_sharing

MIB = 1024 * 1024
FIT_MARGIN = 1024 * MIB  # llama.cpp's default --fit-target margin per device
UNQUANTIZED = {"f32", "f16", "bf16"}
_VERBOSITY_RE = re.compile(r"verbosity = (\d+)")
# Lines llama-server prints only at -lv 4 (TRACE), at startup or per request.
_TRACE_MARKERS = ("new prompt, n_ctx_slot", "new slot, n_ctx", "llama_kv_cache: ", "print_info: n_ctx_train")


def ok(check: str, message: str) -> CheckResult:
    """A passing check."""
    return CheckResult(check, "pass", message)


def warn(check: str, message: str, fix: str) -> CheckResult:
    """A warning with its fix."""
    return CheckResult(check, "warn", message, fix)


def fail(check: str, message: str, fix: str) -> CheckResult:
    """A failure with its fix."""
    return CheckResult(check, "fail", message, fix)


def skip(check: str, why: str) -> CheckResult:
    """A check that could not run: never shown as a pass."""
    return CheckResult(check, "skip", f"skipped: {why}")


def size(n: float) -> str:
    """Bytes as MiB or GiB."""
    return f"{n / MIB / 1024:.2f} GiB" if n >= 1024 * MIB else f"{n / MIB:.1f} MiB"


def tok(n: int) -> str:
    """A token count with thousands separators."""
    return f"{n:,}"


def _slot_ctx(facts: DoctorFacts) -> int | None:
    if facts.mode == "running" and facts.server is not None and facts.server.n_ctx_slot:
        return facts.server.n_ctx_slot
    return facts.kv.plan.n_ctx_slot if facts.kv is not None else None


def _last(facts: DoctorFacts, kind: type) -> object | None:
    found = [e for e in facts.log_events if isinstance(e, kind)]
    return found[-1] if found else None


def check_server(facts: DoctorFacts) -> CheckResult:
    """Is llama-server reachable, and in which state?"""
    snap, url = facts.server, facts.launch.url
    if snap is None:
        return skip("server", f"not contacted; checked the planned launch of {facts.launch.model}")
    if snap.error.startswith("unauthorized"):
        return fail(
            "server",
            f"{url} rejected the API key ({snap.error.split(':')[0]})",
            "set [server] api_key (or LLAMA_API_KEY) to the key llama-server was started with",
        )
    if snap.state in ("up", "sleeping"):
        asleep = " (sleeping: model unloaded until the next request)" if snap.state == "sleeping" else ""
        return ok(
            "server",
            f"llama-server up at {url}{asleep}: model {snap.model or '?'}, build {snap.build or '?'}, "
            f"{snap.n_slots} slot(s) × {tok(snap.n_ctx_slot)} tokens",
        )
    if snap.state == "loading":
        return warn(
            "server",
            f"llama-server at {url} is still loading its model",
            "wait until /health answers 200 and run the doctor again",
        )
    fix = f"start llama-server (`llama-server -m MODEL --port {_port(url)}`) or set [server] url / --server"
    if facts.mode == "planned" and facts.launch.model:
        return warn("server", f"not reachable: {snap.error}; checked the planned launch only", fix)
    return fail("server", f"not reachable: {snap.error}", fix)


def _port(url: str) -> str:
    match = re.search(r":(\d+)", url.split("//", 1)[-1])
    return match.group(1) if match else "8080"


def check_model(facts: DoctorFacts) -> CheckResult:
    """Can the GGUF be read, and what is it?"""
    info = facts.gguf
    if info is None:
        if facts.mode == "running":
            return warn(
                "model",
                f"model file not readable here ({facts.gguf_error}); "
                "KV and memory figures use the server's numbers only",
                "run the doctor on the server's machine or pass --model PATH",
            )
        return fail(
            "model",
            facts.gguf_error or "no model to check",
            "set [server] model to the GGUF path or pass --model PATH",
        )
    heads = sorted(set(info.n_head_kv))
    kv_heads = "/".join(str(h) for h in heads)
    swa = f", SWA window {info.n_swa} on {sum(info.swa)} layers" if any(info.swa) else ""
    mla = ", MLA" if info.is_mla else ""
    train = tok(info.n_ctx_train) if info.n_ctx_train else "unknown"
    return ok(
        "model",
        f"{info.path.rsplit('/', 1)[-1]}: {info.architecture}, {info.n_layer} layers, {kv_heads} KV heads of "
        f"{info.key_length}{swa}{mla}, n_ctx_train {train}, {info.file_type_name}, {size(info.file_size)}",
    )


def check_train_context(facts: DoctorFacts) -> CheckResult:
    """Is the per-slot context above the model's training context (the server caps it)?"""
    capped = _last(facts, TrainContextCapped)
    if isinstance(capped, TrainContextCapped):
        return warn(
            "train_context",
            f"slot context {tok(capped.n_ctx)} exceeds n_ctx_train {tok(capped.n_ctx_train)}: "
            f"the server caps each slot at {tok(capped.n_ctx_train)} (seen in the log)",
            "lower -c so each slot gets at most n_ctx_train tokens; the extra KV is wasted",
        )
    kv = facts.kv
    if facts.mode == "planned" and kv is not None and kv.plan.capped_by_train:
        plan = kv.plan
        cap = plan.n_ctx_train or 0
        return warn(
            "train_context",
            f"per-slot context {tok(plan.n_ctx_seq)} exceeds n_ctx_train {tok(cap)}: llama-server caps each "
            f"slot at {tok(cap)} but still allocates KV for {tok(plan.n_ctx_seq)}",
            f"use -c {cap * plan.n_stream} (n_ctx_train × {plan.n_stream} stream(s)) or less",
        )
    train = facts.server.n_ctx_train if facts.server is not None else None
    train = train or (facts.gguf.n_ctx_train if facts.gguf is not None else None)
    slot = _slot_ctx(facts)
    if train is None or slot is None:
        return skip("train_context", "training context or slot size unknown; nothing to compare")
    return ok("train_context", f"slot context {tok(slot)} ≤ n_ctx_train {tok(train)}")


def _logged_facts(facts: DoctorFacts) -> ServerFacts:
    """The startup log's kv_unified and n_ctx (the last server start in the events read)."""
    init = _last(facts, ServerInit)
    events = facts.log_events
    logged = [e.value for e in events if isinstance(e, ContextParam) and e.name == "n_ctx" and e.value]
    return ServerFacts(
        kv_unified=init.kv_unified if isinstance(init, ServerInit) else None,
        n_ctx=logged[-1] if logged else None,
    )


def check_slot_split(facts: DoctorFacts) -> CheckResult:
    """How the context is shared between --parallel slots."""
    if facts.mode == "running" and facts.server is not None and facts.server.n_slots:
        # What the server says (its /props, /slots and startup log), never what the flags suggest.
        sharing = kv_sharing(_logged_facts(facts), facts.server)
        if sharing.mode == "split":
            return warn(
                "slot_split",
                sharing.describe(),
                "for one agent use -np 1, or --kv-unified so one request can use the whole pool",
            )
        if sharing.mode == "unknown":
            slots = f"{facts.server.n_slots} slots of {tok(facts.server.n_ctx_slot)} tokens"
            return skip("slot_split", f"{slots}; {sharing.describe()}")
        return ok("slot_split", sharing.describe())
    if facts.kv is None:
        return skip("slot_split", "no context plan to check (no readable model)")
    plan = facts.kv.plan
    if plan.n_seq == 1:
        return ok("slot_split", f"1 slot: one request can use all {tok(plan.n_ctx_slot)} tokens")
    if plan.unified:
        auto = " (-np auto)" if facts.launch.parallel <= 0 else ""
        return ok(
            "slot_split",
            f"{plan.n_seq} slots{auto} share one unified pool of {tok(plan.n_ctx)} cells: "
            "one request can use "
            f"{tok(plan.n_ctx_slot)}, concurrent ones compete and idle slots get purged",
        )
    return warn(
        "slot_split",
        f"-c {tok(plan.n_ctx)} is split across {plan.n_seq} slots: "
        f"each request gets {tok(plan.n_ctx_seq)} tokens",
        f"for one agent use -np 1; or add --kv-unified; or raise -c to {plan.n_seq} × the context you need",
    )


def check_memory(facts: DoctorFacts) -> CheckResult:
    """KV cache plus model against free VRAM (NVML), or RAM when there is no NVIDIA GPU."""
    kv_bytes = facts.kv.total_bytes if facts.kv is not None else None
    model_bytes = facts.gguf.file_size if facts.gguf is not None else None
    gpu = facts.gpu
    parts = []
    if model_bytes is not None:
        parts.append(f"model {size(model_bytes)}")
    if kv_bytes is not None:
        kv = facts.kv
        assert kv is not None
        parts.append(f"KV {size(kv_bytes)} ({kv.cache_type_k}/{kv.cache_type_v}, {tok(kv.plan.n_ctx)} cells)")
    if not parts:
        return skip("memory", "no model to size")
    need_text = " + ".join(parts)
    need = (model_bytes or 0) + (kv_bytes or 0)
    shrink = "lower -c, use -ctk q8_0 -ctv q8_0 (with -fa on), or offload fewer layers (-ngl)"
    if gpu is not None and gpu.available:
        if facts.mode == "running":
            used, total = gpu.mem_used, gpu.mem_total
            own = f", llama-server uses {size(gpu.server_process_vram)}" if gpu.server_process_vram else ""
            message = f"{need_text}; VRAM {size(used)} of {size(total)} used{own}"
            return warn("memory", message, shrink) if total and used / total > 0.95 else ok("memory", message)
        free = gpu.mem_total - gpu.mem_used
        on_gpu = facts.launch.n_gpu_layers.strip() not in ("0",)
        if not on_gpu:
            need = kv_bytes or 0
        if need > free:
            return fail(
                "memory", f"{need_text} needs {size(need)} but only {size(free)} VRAM is free", shrink
            )
        if need + FIT_MARGIN > free:
            return warn(
                "memory",
                f"{need_text} = {size(need)} leaves under 1 GiB of {size(free)} "
                "free VRAM for compute buffers",
                shrink,
            )
        return ok("memory", f"{need_text} = {size(need)} fits in {size(free)} free VRAM")
    reason = gpu.reason if gpu is not None else "GPU not checked"
    if facts.mode == "running":
        rss = f"; llama-server RSS {size(gpu.process_rss)}" if gpu is not None and gpu.process_rss else ""
        return ok("memory", f"{reason}: model and KV live in RAM ({need_text}){rss}")
    avail = facts.mem_available
    if avail is None:
        return ok("memory", f"{reason}: model and KV will live in RAM ({need_text})")
    if need > avail:
        return fail(
            "memory", f"{reason}: {need_text} needs {size(need)} RAM, {size(avail)} available", shrink
        )
    return ok("memory", f"{reason}: {need_text} = {size(need)} in RAM ({size(avail)} available)")


def check_v_cache(facts: DoctorFacts) -> CheckResult:
    """A quantized V cache needs flash attention; MLA models need equal K and V types."""
    launch = facts.launch
    k, v, fa = launch.cache_type_k.lower(), launch.cache_type_v.lower(), launch.flash_attn.lower()
    kv_line = _last(facts, KvCacheSize)
    if facts.mode == "running" and isinstance(kv_line, KvCacheSize) and kv_line.k_type and kv_line.v_type:
        k, v = kv_line.k_type, kv_line.v_type
        fa_line = _last(facts, FlashAttention)
        fa = ("on" if fa_line.enabled else "off") if isinstance(fa_line, FlashAttention) else fa
    for name, value in (("cache_type_k", k), ("cache_type_v", v)):
        if value not in CACHE_TYPE_BYTES:
            return fail(
                "v_cache",
                f"{name} {value!r} is not a cache type llama-server accepts",
                f"use one of {', '.join(CACHE_TYPE_BYTES)}",
            )
    if facts.gguf is not None and facts.gguf.is_mla and k != v:
        return fail(
            "v_cache",
            f"MLA model with K cache {k} and V cache {v}",
            "MLA models need -ctk and -ctv set to the same type",
        )
    info = facts.gguf
    for name, value in (("K", k), ("V", v)):
        dims = {info.key_length, info.key_length_swa} if info and name == "K" else set()
        if info and name == "V" and not info.is_mla:
            dims = {info.value_length, info.value_length_swa}
        bad = sorted(d for d in dims if d % 32)
        if value not in UNQUANTIZED and bad:
            return fail(
                "v_cache",
                f"{name} cache type {value} packs 32 values per block but the model's head size is {bad[0]}: "
                "llama-server fails to create the context",
                f"use -ct{name.lower()} f16 (or bf16/f32) with this model",
            )
    if v in UNQUANTIZED:
        return ok("v_cache", f"K cache {k}, V cache {v}")
    if fa in ("off", "false", "0", "disabled"):
        return fail(
            "v_cache",
            f"quantized V cache ({v}) with flash attention off: llama-server refuses to start",
            "use -fa on (or auto), or -ctv f16",
        )
    return ok(
        "v_cache",
        f"K cache {k}, V cache {v} with flash attention {fa} "
        "(a quantized V cache needs it; auto turns it on where the device supports it)",
    )


def _train_cap(facts: DoctorFacts) -> int | None:
    """n_ctx_train when it, not -c, sets the slot size (raising -c cannot make the slot larger)."""
    capped = _last(facts, TrainContextCapped)
    if isinstance(capped, TrainContextCapped):
        return capped.n_ctx_train
    if facts.mode == "planned" and facts.kv is not None and facts.kv.plan.capped_by_train:
        return facts.kv.plan.n_ctx_train
    train = facts.server.n_ctx_train if facts.mode == "running" and facts.server is not None else None
    train = train or (facts.gguf.n_ctx_train if facts.gguf is not None else None)
    slot = _slot_ctx(facts)
    return train if train and slot and slot >= train else None


def _n_seq(facts: DoctorFacts) -> int:
    if facts.mode == "running" and facts.server is not None and facts.server.n_slots:
        return facts.server.n_slots
    return facts.kv.plan.n_seq if facts.kv is not None else 1


def _longer_context(facts: DoctorFacts, need: int, cap: int) -> str:
    """The fix when the model's training context caps the slot: another model, or stretch this one."""
    target = 1 << max(need - 1, 1).bit_length()
    arch = facts.gguf.architecture if facts.gguf is not None else "<arch>"
    return (
        f"use a model trained for at least {tok(need)} tokens, or stretch this one: "
        f"--override-kv {arch}.context_length=int:{target} --rope-scaling yarn "
        f"--rope-scale {target / cap:g} --yarn-orig-ctx {cap} -c {target * _n_seq(facts)} "
        f"(answers degrade past the trained {tok(cap)} tokens)"
    )


def check_agent_window(facts: DoctorFacts) -> CheckResult:
    """Do the agent's smallest request and its assumed window fit the real per-slot context?"""
    launch = facts.launch
    claude = launch.agent_client == "claude"
    assumed = launch.agent_window or (CLAUDE_DEFAULT_WINDOW if claude else 0)
    source = launch.agent_window_source or (
        "[agent] context_window" if launch.agent_window else "Claude Code's default window"
    )
    slot = _slot_ctx(facts)
    if not assumed:
        return warn(
            "agent_window",
            f"the {launch.agent_client} agent's context window is unknown",
            "set [agent] context_window to the window your agent assumes",
        )
    if slot is None:
        return skip("agent_window", f"slot size unknown (the agent assumes {tok(assumed)} tokens, {source})")
    cap = _train_cap(facts)
    capped = f" (the model's n_ctx_train {tok(cap)} caps it: a larger -c cannot help)" if cap else ""
    need = facts.agent_need
    if need.tokens and need.tokens > slot:
        fix = _longer_context(facts, need.tokens, cap) if cap else (
            f"raise -c so each slot holds at least {tok(need.tokens)} tokens "
            f"(-c {need.tokens * _n_seq(facts)})"
        )
        return fail(
            "agent_window",
            f"the agent's smallest request is {tok(need.tokens)} tokens ({need.source}) but each slot "
            f"holds {tok(slot)}{capped}: its requests fail with HTTP 400 (exceeds the available context "
            "size); a smaller agent window cannot help",
            fix,
        )
    if assumed > slot:
        fixes = [f"export CLAUDE_CODE_AUTO_COMPACT_WINDOW={slot} before starting claude"] if claude else []
        raise_c = f"raise -c so each slot holds {tok(assumed)} tokens"
        fixes.append(_longer_context(facts, assumed, cap) if cap else raise_c)
        return fail(
            "agent_window",
            f"agent assumes {tok(assumed)} tokens ({source}) but each slot holds {tok(slot)}{capped}: "
            f"requests past {tok(slot)} fail with exceed_context_size_error before the agent compacts",
            "; or ".join(fixes),
        )
    if assumed * 2 < slot:
        return warn(
            "agent_window",
            f"agent compacts within {tok(assumed)} tokens ({source}) but each slot holds {tok(slot)}",
            "lower -c to save memory, or raise the agent's window"
            + (" (CLAUDE_CODE_AUTO_COMPACT_WINDOW)" if claude else ""),
        )
    fits = f"; its smallest request {tok(need.tokens)} fits" if need.tokens else ""
    return ok("agent_window", f"agent window {tok(assumed)} ({source}) ≤ slot context {tok(slot)}{fits}")


def check_log(facts: DoctorFacts) -> CheckResult:
    """Is the server log configured and verbose enough to show checkpoints and cache decisions?"""
    path = facts.launch.log_file
    fix = "start llama-server with --log-file PATH --log-colors off -lv 4 and set [server] log_file = PATH"
    if not path:
        return warn(
            "log", "no [server] log_file: checkpoint, cache-reuse and timing events are invisible", fix
        )
    if facts.log_head is None:
        return warn("log", f"{path}: {facts.log_error or 'not readable'}", fix)
    head = facts.log_head
    colored = "\x1b[" in head
    trace = any(marker in head for marker in _TRACE_MARKERS)
    match = _VERBOSITY_RE.search(head)
    level = int(match.group(1)) if match else None
    if not trace and (level is None or level < 4):
        seen = f"verbosity {level}" if level is not None else "no TRACE lines"
        return warn(
            "log",
            f"{path}: {seen}; checkpoint and prompt-cache lines need -lv 4",
            "restart llama-server with -lv 4 (or -v)",
        )
    if colored:
        return warn("log", f"{path}: ANSI colour codes in the log", "add --log-colors off")
    shown = f"verbosity {level}" if level is not None else "TRACE lines present"
    return ok("log", f"{path}: {shown}, checkpoint and cache events visible")


CHECKS: tuple[Callable[[DoctorFacts], CheckResult], ...] = (
    check_server,
    check_model,
    check_train_context,
    check_slot_split,
    check_memory,
    check_v_cache,
    check_agent_window,
    check_log,
    check_template,
)


def run_checks(facts: DoctorFacts) -> list[CheckResult]:
    """Every check, in display order (a router's presets last, only for a router)."""
    results = [check(facts) for check in CHECKS]
    if facts.presets:
        results.append(check_presets(facts.presets))
    return results
