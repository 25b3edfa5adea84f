"""GGUF header reading and KV estimates, checked against the KV buffer sizes a real llama-server logs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from gguf import GGUFWriter
from support.llama import StartServer
from support.tiny_models import TinyShape, write_dense_model

from tui.core.gguf import GgufError, estimate_kv, plan_context, read_gguf_info
from tui.core.gguf.swa import pattern_layers

KV_BUFFER_RE = re.compile(r"llama_kv_cache: +\S+ KV buffer size = +([\d.]+) MiB")
MIB = 1024 * 1024


def logged_kv_mib(log: str) -> float:
    """Sum of the `KV buffer size` lines (an iSWA model logs one for the full and one for the SWA cache)."""
    return sum(float(m) for m in KV_BUFFER_RE.findall(log))


def write_header_only(path: Path, arch: str, **keys: int | list[int]) -> Path:
    """A GGUF with only metadata (no tensors): enough for read_gguf_info."""
    writer = GGUFWriter(str(path), arch)
    for key, value in keys.items():
        name = f"{arch}.{key.replace('__', '.')}"
        if isinstance(value, list):
            writer.add_array(name, value)
        else:
            writer.add_uint32(name, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def quantizable_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dense model with head size 32, so q8_0/q4_0 caches are accepted by llama-server."""
    shape = TinyShape(n_embd=128, n_layer=2, n_head=4, n_head_kv=2, n_ff=128)
    return write_dense_model(tmp_path_factory.mktemp("q") / "tiny-h32.gguf", shape=shape, name="tiny-h32")


def test_reads_dense_header(tmp_path: Path) -> None:
    shape = TinyShape(n_embd=64, n_layer=3, n_head=4, n_head_kv=2, n_ff=32)
    path = write_dense_model(tmp_path / "d.gguf", shape=shape, n_ctx_train=65536, name="dense-3")
    info = read_gguf_info(path)
    assert info.architecture == "llama"
    assert info.name == "dense-3"
    assert info.n_layer == shape.n_layer
    assert info.n_head_kv == (shape.n_head_kv,) * shape.n_layer
    assert info.key_length == info.value_length == shape.head_dim
    assert info.n_ctx_train == 65536
    assert info.file_size == path.stat().st_size
    assert not any(info.swa) and not info.is_mla and not info.is_recurrent


def test_reads_swa_header(swa_model: Path) -> None:
    info = read_gguf_info(swa_model)
    assert info.architecture == "gemma3"
    assert info.n_swa == 64
    # sliding_window_pattern 2 in the file: even layers slide (llama_hparams::set_swa_pattern).
    assert info.swa == pattern_layers(info.n_layer, 2)
    assert info.swa_pattern_known


@pytest.mark.llama
@pytest.mark.parametrize(
    ("ctx", "parallel", "extra"),
    [(8192, 1, ()), (8000, 2, ()), (4096, 3, ("--kv-unified",)), (20000, 4, ("-ctk", "f32", "-ctv", "f32"))],
    ids=["single", "split-padded", "unified", "f32-4slots"],
)
@pytest.mark.parametrize("which", ["dense", "swa"])
def test_estimate_matches_server_log(
    llama_server: StartServer,
    tiny_model: Path,
    swa_model: Path,
    which: str,
    ctx: int,
    parallel: int,
    extra: tuple[str, ...],
) -> None:
    model = tiny_model if which == "dense" else swa_model
    server = llama_server(model, ctx_size=ctx, parallel=parallel, extra_args=extra)
    log = server.wait_for_log("n_ctx_slot")
    cache = "f32" if "f32" in extra else "f16"
    estimate = estimate_kv(
        read_gguf_info(model),
        ctx,
        parallel,
        unified="--kv-unified" in extra,
        cache_type_k=cache,
        cache_type_v=cache,
    )
    assert estimate.kv_bytes / MIB == pytest.approx(logged_kv_mib(log), abs=0.006)
    slot_line = re.search(r"n_ctx_slot = (\d+)", log)
    assert slot_line is not None and int(slot_line.group(1)) == estimate.plan.n_ctx_slot


@pytest.mark.llama
@pytest.mark.parametrize("cache", ["q8_0", "q4_0", "q5_1", "iq4_nl", "bf16"])
def test_quantized_estimate_matches_server_log(
    llama_server: StartServer, quantizable_model: Path, cache: str
) -> None:
    server = llama_server(
        quantizable_model, ctx_size=6000, parallel=2, extra_args=("-ctk", cache, "-ctv", cache, "-fa", "on")
    )
    log = server.wait_for_log("n_ctx_slot")
    estimate = estimate_kv(read_gguf_info(quantizable_model), 6000, 2, cache_type_k=cache, cache_type_v=cache)
    assert estimate.kv_bytes / MIB == pytest.approx(logged_kv_mib(log), abs=0.006)


def test_llama_3_8b_example_from_reference(tmp_path: Path) -> None:
    path = write_header_only(
        tmp_path / "l8b.gguf",
        "llama",
        context_length=131072,
        embedding_length=4096,
        block_count=32,
        attention__head_count=32,
        attention__head_count_kv=8,
    )
    info = read_gguf_info(path)
    f16 = estimate_kv(info, 65536, 1)
    assert f16.bytes_per_token == 128 * 1024
    assert f16.kv_bytes == 8 * 1024 * MIB
    assert estimate_kv(info, 65536, 1, cache_type_k="q8_0", cache_type_v="q8_0").bytes_per_token == 68 * 1024


def test_per_layer_kv_heads_and_mla(tmp_path: Path) -> None:
    hybrid = write_header_only(
        tmp_path / "arr.gguf",
        "llama",
        context_length=4096,
        embedding_length=256,
        block_count=4,
        attention__head_count=4,
        attention__head_count_kv=[2, 0, 2, 1],
    )
    info = read_gguf_info(hybrid)
    assert info.n_head_kv == (2, 0, 2, 1)
    assert info.kv_layers == (True, False, True, True)
    # head size 256/4 = 64; K+V f16 per token: (2+2+1) heads * 64 * 2 * 2 bytes
    assert estimate_kv(info, 4096, 1).bytes_per_token == 5 * 64 * 2 * 2
    mla = write_header_only(
        tmp_path / "mla.gguf",
        "deepseek2",
        context_length=163840,
        embedding_length=7168,
        block_count=3,
        attention__head_count=128,
        attention__head_count_kv=1,
        attention__key_length=576,
        attention__value_length=512,
        attention__key_length_mla=192,
        attention__value_length_mla=128,
        attention__kv_lora_rank=512,
    )
    mla_info = read_gguf_info(mla)
    assert mla_info.is_mla
    estimate = estimate_kv(mla_info, 4096, 1)
    assert estimate.v_bytes == 0
    assert estimate.k_bytes == 3 * 576 * 2 * 4096


def test_swa_cells_follow_llama_cpp_rule(tmp_path: Path) -> None:
    path = write_header_only(
        tmp_path / "g3.gguf",
        "gemma3",
        context_length=131072,
        embedding_length=2560,
        block_count=12,
        attention__head_count=8,
        attention__head_count_kv=4,
        attention__key_length=256,
        attention__value_length=256,
        attention__sliding_window=1024,
    )
    info = read_gguf_info(path)
    assert info.swa == pattern_layers(12, 6)  # gemma3's default period when the GGUF has no pattern
    assert sum(info.swa) == 10
    unified = estimate_kv(info, 32768, 4, unified=True)
    assert unified.cells_swa == 4608  # pad256(min(32768, 1024*4 + 512))
    split = estimate_kv(info, 32768, 4)
    assert split.cells_swa == 1536  # pad256(min(8192, 1024 + 512))
    assert estimate_kv(info, 32768, 4, swa_full=True).cells_swa == split.cells_full


def test_plan_context_rules() -> None:
    assert plan_context(8000, 2, 262144).n_ctx_seq == 4096
    auto = plan_context(0, 0, 32768)
    assert (auto.n_seq, auto.unified, auto.n_ctx, auto.n_ctx_slot) == (4, True, 32768, 32768)
    fit = plan_context(0, 2, 32768)
    assert (fit.n_ctx, fit.n_ctx_seq) == (65536, 32768)
    no_fit = plan_context(0, 2, 32768, fit=False)
    assert no_fit.n_ctx_seq == 16384
    capped = plan_context(300000, 1, 262144)
    assert capped.capped_by_train and capped.n_ctx_slot == 262144


def test_pattern_layers_matches_set_swa_pattern() -> None:
    assert pattern_layers(6, 3) == (True, True, False, True, True, False)
    assert pattern_layers(4, 4, dense_first=True) == (False, True, True, True)
    assert pattern_layers(3, 0) == (True, True, True)


def test_unknown_cache_type_is_rejected(tiny_model: Path) -> None:
    with pytest.raises(ValueError, match="q3_k"):
        estimate_kv(read_gguf_info(tiny_model), 4096, 1, cache_type_k="q3_k")


def test_missing_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(GgufError, match="not found"):
        read_gguf_info(tmp_path / "missing.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all" * 10)
    with pytest.raises(GgufError, match="not a readable GGUF"):
        read_gguf_info(bad)
