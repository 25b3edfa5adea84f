"""KV-cache size for a planned context, mirroring llama.cpp's context padding, SWA and MLA rules."""

from __future__ import annotations

from dataclasses import dataclass

from tui.core.gguf.reader import GgufInfo

MIB = 1024 * 1024
PAD = 256  # llama.cpp pads n_ctx, n_ctx_seq and the SWA cache to 256 cells
AUTO_PARALLEL = 4  # llama-server's -np auto: 4 slots sharing one unified KV cache

# Bytes per element (GGML_QUANT_SIZES: block bytes / block size) for the cache types llama-server accepts.
CACHE_TYPE_BYTES: dict[str, float] = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 34 / 32,
    "q5_1": 24 / 32,
    "q5_0": 22 / 32,
    "q4_1": 20 / 32,
    "q4_0": 18 / 32,
    "iq4_nl": 18 / 32,
}


def _pad(n: int, to: int = PAD) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class ContextPlan:
    """How llama-server turns -c / -np / --kv-unified into cells, streams and per-slot context."""

    requested: int
    n_seq: int
    unified: bool
    n_ctx: int
    n_ctx_seq: int
    n_ctx_slot: int
    n_ctx_train: int | None

    @property
    def n_stream(self) -> int:
        """KV streams: one shared pool when unified, one per slot otherwise."""
        return 1 if self.unified else self.n_seq

    @property
    def capped_by_train(self) -> bool:
        """The server caps each slot at n_ctx_train although the KV buffer is allocated larger."""
        return self.n_ctx_train is not None and self.n_ctx_seq > self.n_ctx_train


def plan_context(
    ctx_size: int, parallel: int, n_ctx_train: int | None, *, unified: bool | None = None, fit: bool = True
) -> ContextPlan:
    """Resolve the context llama-server would allocate; parallel <= 0 means auto (4 slots, unified)."""
    if parallel <= 0:
        # -np auto forces a unified KV cache (tools/server/server.cpp).
        n_seq, is_unified = AUTO_PARALLEL, True
    else:
        n_seq, is_unified = parallel, bool(unified)
    n_stream = 1 if is_unified else n_seq
    if ctx_size > 0:
        n_ctx = ctx_size
    elif n_ctx_train:
        # -c 0: fit picks n_ctx_train per stream (it may lower it to fit memory); without fit: n_ctx_train.
        n_ctx = n_ctx_train * n_stream if fit else n_ctx_train
    else:
        n_ctx = 4096
    n_ctx = _pad(n_ctx)
    if is_unified:
        n_ctx_seq = n_ctx
    else:
        n_ctx_seq = _pad(n_ctx // n_seq)
        n_ctx = n_ctx_seq * n_seq
    n_ctx_slot = min(n_ctx_seq, n_ctx_train) if n_ctx_train else n_ctx_seq
    return ContextPlan(ctx_size, n_seq, is_unified, n_ctx, n_ctx_seq, n_ctx_slot, n_ctx_train)


@dataclass(frozen=True)
class KvEstimate:
    """Estimated KV (and recurrent state) memory for one model and context plan."""

    plan: ContextPlan
    cache_type_k: str
    cache_type_v: str
    cells_full: int
    cells_swa: int
    k_bytes: int
    v_bytes: int
    recurrent_bytes: int
    bytes_per_token: float
    swa_bytes_per_token: float
    caveats: tuple[str, ...] = ()

    @property
    def kv_bytes(self) -> int:
        """K plus V buffers over all layers and streams."""
        return self.k_bytes + self.v_bytes

    @property
    def total_bytes(self) -> int:
        """KV buffers plus recurrent state."""
        return self.kv_bytes + self.recurrent_bytes

    @property
    def total_mib(self) -> float:
        """total_bytes in MiB, as llama.cpp logs buffer sizes."""
        return self.total_bytes / MIB

    @property
    def exact(self) -> bool:
        """True when no approximation was needed for this model."""
        return not self.caveats


def _bytes_per_element(cache_type: str) -> float:
    try:
        return CACHE_TYPE_BYTES[cache_type.lower()]
    except KeyError:
        valid = ", ".join(CACHE_TYPE_BYTES)
        raise ValueError(f"unknown cache type {cache_type!r}; use one of {valid}") from None


def _recurrent_state_elements(info: GgufInfo) -> int:
    # Mamba-style conv state (d_conv-1)*(d_inner + 2*groups*d_state) plus ssm state d_state*d_inner.
    width = info.ssm_inner_size + 2 * info.ssm_group_count * info.ssm_state_size
    conv = max(0, info.ssm_conv_kernel - 1) * width
    return conv + info.ssm_state_size * info.ssm_inner_size


def estimate_kv(
    info: GgufInfo,
    ctx_size: int,
    parallel: int = 1,
    *,
    cache_type_k: str = "f16",
    cache_type_v: str = "f16",
    unified: bool | None = None,
    flash_attn: bool = True,
    n_ubatch: int = 512,
    swa_full: bool = False,
    fit: bool = True,
) -> KvEstimate:
    """KV bytes llama.cpp allocates for `info` at this context (src/llama-kv-cache*.cpp)."""
    plan = plan_context(ctx_size, parallel, info.n_ctx_train, unified=unified, fit=fit)
    bpe_k, bpe_v = _bytes_per_element(cache_type_k), _bytes_per_element(cache_type_v)
    caveats: list[str] = []
    cells_full = plan.n_ctx_seq
    cells_swa = cells_full
    if info.n_swa > 0 and any(info.swa) and not swa_full:
        window = info.n_swa * (plan.n_seq if plan.unified else 1) + n_ubatch
        cells_swa = _pad(min(cells_full, window))
    k_dims: list[int] = []
    v_dims: list[int] = []
    is_swa: list[bool] = []
    for il, has_kv in enumerate(info.kv_layers):
        if not has_kv:
            continue
        swa = info.swa[il] if info.n_swa > 0 else False
        heads = info.n_head_kv[il]
        k_dims.append(heads * (info.key_length_swa if swa else info.key_length))
        # MLA caches only the compressed K (kv_lora_rank + rope dims); there is no V tensor.
        v_dims.append(0 if info.is_mla else heads * (info.value_length_swa if swa else info.value_length))
        is_swa.append(swa)
    if not flash_attn and len(set(v_dims)) > 1:
        # Without flash attention the V cache is transposed and padded to the widest layer.
        v_dims = [max(v_dims)] * len(v_dims)
    k_bytes = v_bytes = 0.0
    per_token = per_token_swa = 0.0
    for k_dim, v_dim, swa in zip(k_dims, v_dims, is_swa, strict=True):
        row = k_dim * bpe_k + v_dim * bpe_v
        cells = cells_swa if swa else cells_full
        k_bytes += k_dim * bpe_k * cells * plan.n_stream
        v_bytes += v_dim * bpe_v * cells * plan.n_stream
        if swa:
            per_token_swa += row
        else:
            per_token += row
    recurrent = 0
    if info.is_recurrent:
        n_recurrent = sum(info.recurrent_layers)
        recurrent = _recurrent_state_elements(info) * 4 * n_recurrent * max(1, plan.n_seq)
        caveats.append("recurrent state size is approximate (Mamba-style formula, f32)")
    if info.n_swa > 0 and not info.swa_pattern_known:
        caveats.append(f"sliding-window pattern unknown for {info.architecture}; sized as full attention")
    if info.nextn_predict_layers:
        caveats.append("MTP/NextN layers may add a KV cache that is not counted")
    return KvEstimate(
        plan=plan,
        cache_type_k=cache_type_k.lower(),
        cache_type_v=cache_type_v.lower(),
        cells_full=cells_full,
        cells_swa=cells_swa,
        k_bytes=round(k_bytes),
        v_bytes=round(v_bytes),
        recurrent_bytes=recurrent,
        bytes_per_token=per_token,
        swa_bytes_per_token=per_token_swa,
        caveats=tuple(caveats),
    )
