"""Parser tests over committed corpora (this build's formats and older builds') plus a fuzz test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.core.logs import events as ev
from tui.core.logs.parse import LogParser, parse_text

DATA = Path(__file__).parent / "data" / "logs"

# (line, kind, expected fields) — each line is parsed on its own by a fresh parser.
CASES: list[tuple[str, str, dict[str, Any]]] = [
    (
        "0.05.000.000 I slot get_availabl: id  0 | task -1 | selected slot by LCP similarity, "
        "f_sim_best = 0.541 (> 0.100 thold), f_keep = 0.895",
        "slot_selected",
        {
            "slot": 0,
            "task": None,
            "ts": 5.0,
            "level": "I",
            "reason": "lcp",
            "similarity": 0.541,
            "threshold": 0.1,
            "f_keep": 0.895,
        },
    ),
    (
        "slot get_availabl: id  3 | task -1 | selected slot by LCP similarity, sim_best = 0.541 (> 0.100 thold), "  # noqa: E501
        "f_keep = 0.895",
        "slot_selected",
        {"slot": 3, "ts": None, "level": None, "reason": "lcp", "similarity": 0.541, "f_keep": 0.895},
    ),
    (
        "0.11.476.797 I slot get_availabl: id  3 | task -1 | selected slot by LRU, t_last = -1",
        "slot_selected",
        {"reason": "lru", "t_last": -1, "ts": 11.476797},
    ),
    ("I slot get_availabl: id  2 | task -1 | selected slot by id (2)", "slot_selected", {"reason": "id"}),
    (
        "0.11.476.987 I slot launch_slot_: id  3 | task 1 | processing task, is_child = 0",
        "task_launched",
        {"slot": 3, "task": 1, "is_child": False},
    ),
    ("slot launch_slot_: id  3 | task 0 | processing task", "task_launched", {"task": 0, "is_child": None}),
    (
        "0.05.000.020 I slot   operator(): id  0 | task 12 | new prompt, n_ctx_slot = 32768, n_keep = 0, "
        "task.n_tokens = 2949",
        "new_prompt",
        {"n_ctx_slot": 32768, "n_keep": 0, "n_prompt_tokens": 2949},
    ),
    (
        "slot update_slots: id  3 | task 0 | new prompt, n_ctx_slot = 4096, n_keep = 0, n_prompt_tokens = 1595",  # noqa: E501
        "new_prompt",
        {"n_ctx_slot": 4096, "n_prompt_tokens": 1595},
    ),
    (
        "0.05.000.030 I slot   operator(): id  0 | task 12 | cached n_tokens = 1591, memory_seq_rm [1591, end)",  # noqa: E501
        "cached_prefix",
        {"n_cached": 1591, "seq_rm_from": 1591},
    ),
    (
        "slot update_slots: id  3 | task 0 | n_tokens = 0, memory_seq_rm [0, end)",
        "cached_prefix",
        {"n_cached": 0, "seq_rm_from": 0},
    ),
    (
        "slot update_slots: id  3 | task 0 | n_past = 17, memory_seq_rm [17, end)",
        "cached_prefix",
        {"n_cached": 17},
    ),
    (
        "slot update_slots: id  2 | task 300 | kv cache rm [12, end)",
        "cached_prefix",
        {"n_cached": 12, "seq_rm_from": 12},
    ),
    (
        "0.08.060.000 I slot create_check: id  0 | task 12 | created context checkpoint 2 of 32 (pos_min = 1590, "  # noqa: E501
        "pos_max = 1590, n_tokens = 1591, size = 62.813 MiB)",
        "checkpoint_created",
        {"index": 2, "max": 32, "pos_min": 1590, "pos_max": 1590, "n_tokens": 1591, "size_mib": 62.813},
    ),
    (
        "slot update_slots: id  0 | task 1 | created context checkpoint 1 of 3 (pos_min = 0, pos_max = 1023, "
        "size = 1.500 MiB)",
        "checkpoint_created",
        {"index": 1, "max": 3, "n_tokens": None, "size_mib": 1.5},
    ),
    (
        "I slot   operator(): id  0 | task 12 | restored context checkpoint (pos_min = 1590, pos_max = 1590, "
        "n_tokens = 1591, n_past = 1591, size = 62.813 MiB)",
        "checkpoint_restored",
        {"pos_min": 1590, "n_tokens": 1591, "n_past": 1591, "size_mib": 62.813},
    ),
    (
        "I slot   operator(): id  0 | task 12 | erased invalidated context checkpoint (pos_min = 2000, "
        "pos_max = 2000, n_tokens = 2001, n_swa = 512, pos_next = 1591, size = 62.813 MiB)",
        "checkpoint_erased",
        {"reason": "invalidated", "n_swa": 512, "pos_next": 1591, "n_tokens": 2001},
    ),
    (
        "W slot create_check: id  0 | task 12 | erasing old context checkpoint (pos_min = 1078, pos_max = 1078, "  # noqa: E501
        "n_tokens = 1079, size = 62.813 MiB)",
        "checkpoint_erased",
        {"reason": "old", "pos_min": 1078, "level": "W"},
    ),
    (
        "I slot create_check: id  0 | task 12 | erasing context checkpoint too close to an earlier one "
        "(pos_min = 1500, pos_max = 1500, n_tokens = 1501, size = 62.813 MiB)",
        "checkpoint_erased",
        {"reason": "too_close"},
    ),
    (
        "I slot create_check: id  0 | task 12 | superseding context checkpoint at n_tokens = 1591",
        "checkpoint_erased",
        {"reason": "superseded", "n_tokens": 1591, "pos_min": None},
    ),
    (
        "I slot   operator(): id  0 | task 12 | forcing full prompt re-processing due to lack of cache data "
        "(likely due to SWA or hybrid/recurrent memory, see https://x)",
        "full_reprocess",
        {"task": 12},
    ),
    (
        "0.08.050.000 I slot print_timing: id  0 | task 12 | prompt processing, n_tokens =   8192, progress = 0.41, "  # noqa: E501
        "t =   3.05 s / 2685.90 tokens per second",
        "prompt_progress",
        {
            "n_tokens": 8192,
            "progress": 0.41,
            "elapsed_s": 3.05,
            "tokens_per_s": 2685.9,
            "batch_n_tokens": None,
        },
    ),
    (
        "slot update_slots: id  3 | task 0 | prompt processing progress, n_tokens = 1079, batch.n_tokens = 1079, "  # noqa: E501
        "progress = 0.676489",
        "prompt_progress",
        {"n_tokens": 1079, "batch_n_tokens": 1079, "progress": 0.676489, "elapsed_s": None},
    ),
    (
        "slot update_slots: id  3 | task 0 | prompt processing done, n_tokens = 1595, batch.n_tokens = 4",
        "prompt_done",
        {"n_tokens": 1595, "batch_n_tokens": 4},
    ),
    (
        "0.11.480.707 I slot print_timing: id  3 | task 1 | prompt eval time =       1.20 ms /    28 tokens "
        "(    0.04 ms per token, 23352.79 tokens per second)",
        "timing",
        {"phase": "prompt", "ms": 1.2, "tokens": 28, "ms_per_token": 0.04, "tokens_per_s": 23352.79},
    ),
    (
        "0.11.480.739 I slot print_timing: id  3 | task 1 |        eval time =       2.21 ms /    20 tokens "
        "(    0.12 ms per token,  8605.07 tokens per second)",
        "timing",
        {"phase": "eval", "tokens": 20},
    ),
    (
        "0.11.480.758 I slot print_timing: id  3 | task 1 |       total time =       3.41 ms /    48 tokens",
        "timing",
        {"phase": "total", "ms": 3.41, "tokens": 48, "tokens_per_s": None},
    ),
    (
        "0.11.480.779 I slot print_timing: id  3 | task 1 |    graphs reused =         19",
        "graphs_reused",
        {"count": 19},
    ),
    (
        "I slot print_timing: id  0 | task 12 | n_gen =    100, tg =  52.31 t/s, tg_3s =  51.87 t/s",
        "gen_progress",
        {"n_gen": 100, "tg_per_s": 52.31, "tg_3s_per_s": 51.87},
    ),
    (
        "0.11.480.823 I slot      release: id  3 | task 1 | stop processing: n_tokens = 47, truncated = 0",
        "slot_released",
        {"n_tokens": 47, "truncated": False},
    ),
    (
        "slot      release: id  3 | task 190 | stop processing: n_tokens = 3048, truncated = 1",
        "slot_released",
        {"truncated": True},
    ),
    (
        "W slot   operator(): id  0 | task 12 | slot context shift, n_keep = 1, n_left = 4094, n_discard = 2047",  # noqa: E501
        "context_shift",
        {"n_keep": 1, "n_left": 4094, "n_discard": 2047},
    ),
    (
        "0.13.553.200 W srv          stop: cancel task, id_task = 57",
        "task_cancelled",
        {"task": 57, "slot": None},
    ),
    (
        "srv  log_server_r: done request: POST /v1/messages 127.0.0.1 200",
        "request_done",
        {"method": "POST", "path": "/v1/messages", "client": "127.0.0.1", "status": 200},
    ),
    (
        "0.13.553.113 E srv    send_error: task id = 10, error: request (5002 tokens) exceeds the available context "  # noqa: E501
        "size (4096 tokens), try increasing it",
        "error",
        {"task": 10, "n_prompt_tokens": 5002, "n_ctx": 4096},
    ),
    (
        "E srv  update_slots: Context size has been exceeded. off = 0, n_batch = 512, ret = 1",
        "error",
        {"n_ctx": None},
    ),
    ("0.00.132.600 I srv  update_slots: all slots are idle", "all_slots_idle", {}),
    ("I que    start_loop: entering sleeping state", "sleep_state", {"sleeping": True}),
    ("I srv  handle_sleep: server is entering sleeping state", "sleep_state", {"sleeping": True}),
    ("I que    start_loop: exiting sleeping state", "sleep_state", {"sleeping": False}),
    ("W srv  try_clear_id: purging slot 2 with 5120 tokens", "slot_purged", {"slot": 2, "n_tokens": 5120}),
    ("0.00.017.101 I srv    load_model: loading model 'tiny.gguf'", "model_loading", {"model": "tiny.gguf"}),
    (
        "E srv    load_model: failed to load model, '/m/missing.gguf'",
        "model_load_failed",
        {"model": "/m/missing.gguf"},
    ),
    (
        "I srv    load_model: initializing, n_slots = 4, n_ctx_slot = 131072, kv_unified = 'true'",
        "server_init",
        {"n_slots": 4, "n_ctx_slot": 131072, "kv_unified": True},
    ),
    ("srv          init: initializing slots, n_slots = 2", "server_init", {"n_slots": 2, "n_ctx_slot": None}),
    (
        "I slot   load_model: id  0 | task -1 | new slot, n_ctx = 4096",
        "slot_init",
        {"slot": 0, "n_ctx_slot": 4096},
    ),
    ("slot         init: id  1 | task -1 | new slot n_ctx_slot = 16384", "slot_init", {"n_ctx_slot": 16384}),
    ("I srv  llama_server: model loaded", "model_loaded", {}),
    (
        "I srv  llama_server: listening on http://127.0.0.1:18571",
        "listening",
        {"url": "http://127.0.0.1:18571"},
    ),
    (
        "main: server is listening on http://127.0.0.1:8080 - starting the main loop",
        "listening",
        {"url": "http://127.0.0.1:8080"},
    ),
    ("I srv    operator(): operator(): cleaning up before exit...", "server_stopping", {}),
    ("I print_info: n_ctx_train           = 131072", "model_info", {"name": "n_ctx_train", "value": 131072}),
    ("llm_load_print_meta: n_ctx_train      = 32768", "model_info", {"name": "n_ctx_train", "value": 32768}),
    ("I llama_context: n_ctx_seq             = 4096", "context_param", {"name": "n_ctx_seq", "value": 4096}),
    (
        "I llama_context: flash_attn            = auto",
        "context_param",
        {"name": "flash_attn", "value": None, "text": "auto"},
    ),
    ("llama_new_context_with_model: n_ctx      = 65536", "context_param", {"name": "n_ctx", "value": 65536}),
    (
        "W srv    load_model: the slot context (262144) exceeds the training context of the model (131072) - capping",  # noqa: E501
        "train_context_capped",
        {"n_ctx": 262144, "n_ctx_train": 131072, "source": "server"},
    ),
    (
        "W llama_context: n_ctx_seq (262144) > n_ctx_train (131072) -- possible training context overflow",
        "train_context_capped",
        {"n_ctx": 262144, "source": "llama"},
    ),
    (
        "I llama_kv_cache:      CUDA0 KV buffer size =  2048.00 MiB",
        "buffer_size",
        {"buffer": "kv", "device": "CUDA0", "size_mib": 2048.0},
    ),
    ("llama_kv_cache_init:      CUDA0 KV buffer size =  3584.00 MiB", "buffer_size", {"buffer": "kv"}),
    (
        "I load_tensors:   CPU_Mapped model buffer size =     0.41 MiB",
        "buffer_size",
        {"buffer": "model", "device": "CPU_Mapped", "size_mib": 0.41},
    ),
    (
        "llm_load_tensors:        CUDA0 buffer size =  4168.09 MiB",
        "buffer_size",
        {"buffer": "model", "device": "CUDA0"},
    ),
    (
        "I sched_reserve:      CUDA0 compute buffer size =   304.00 MiB",
        "buffer_size",
        {"buffer": "compute", "size_mib": 304.0},
    ),
    (
        "llama_new_context_with_model:      CUDA0 compute buffer size =   304.00 MiB",
        "buffer_size",
        {"buffer": "compute"},
    ),
    ("I llama_memory_recurrent:        CPU RS buffer size =     0.05 MiB", "buffer_size", {"buffer": "rs"}),
    (
        "I llama_kv_cache: size = 2048.00 MiB ( 16384 cells,  32 layers,  4/1 seqs), K (f16): 1024.00 MiB, "
        "V (f16): 1024.00 MiB",
        "kv_cache_size",
        {
            "size_mib": 2048.0,
            "cells": 16384,
            "layers": 32,
            "seqs": 4,
            "streams": 1,
            "k_type": "f16",
            "v_mib": 1024.0,
        },
    ),
    ("I resolve_fused_ops: Flash Attention enabled", "flash_attention", {"enabled": True}),
    (
        "W resolve_fused_ops: Flash Attention not supported, set to disabled",
        "flash_attention",
        {"enabled": False},
    ),
    (
        "I cmn  common_param: common_params_print_info: build 0 (unknown) with GNU 12.2.0 for Linux x86_64",
        "build_info",
        {"build": 0, "commit": "unknown"},
    ),
    (
        "build: 4567 (abc1234d) with cc (GCC) 12.2.0 for x86_64-linux-gnu",
        "build_info",
        {"build": 4567, "commit": "abc1234d"},
    ),
    (
        "I srv  llama_server: initializing ...",
        "raw",
        {"component": "srv", "func": "llama_server", "message": "initializing ..."},
    ),
    ("some unrelated text", "raw", {"message": "some unrelated text"}),
    (
        '{"type":"log","time":5000123,"level":"info","msg":"slot      release: id  1 | task 4 | stop processing: '  # noqa: E501
        'n_tokens = 9, truncated = 0\\n"}',
        "slot_released",
        {"ts": 5.000123, "level": "I", "slot": 1, "n_tokens": 9},
    ),
    (
        "\x1b[32m0.00.132.600 I \x1b[0msrv  update_slots: all slots are idle\x1b[0m",
        "all_slots_idle",
        {"level": "I"},
    ),
    ("62.05.123.456 I srv  update_slots: all slots are idle\r\n", "all_slots_idle", {"ts": 3725.123456}),
]


@pytest.mark.parametrize(
    ("line", "kind", "fields"), CASES, ids=[f"{i:02d}-{c[1]}" for i, c in enumerate(CASES)]
)
def test_line_parses_to_typed_event(line: str, kind: str, fields: dict[str, Any]) -> None:
    event = LogParser().parse_line(line)
    assert event.kind == kind, event
    data = event.to_json()
    for key, value in fields.items():
        assert data[key] == value, (key, data)
    assert isinstance(event, ev.EVENT_KINDS[kind])


def test_bytes_input_decodes_leniently() -> None:
    event = LogParser().parse_line(b"I srv  update_slots: all slots are idle \xff\xfe\n")
    assert event.kind == "raw" or event.kind == "all_slots_idle"
    assert "\ufffd" in event.line


def test_older_build_timing_block_attaches_bare_lines_to_the_header_task() -> None:
    events = parse_text((DATA / "older_build.log").read_text())
    timings = [e for e in events if isinstance(e, ev.Timing)]
    assert [(t.slot, t.task, t.phase) for t in timings] == [
        (3, 0, "prompt"),
        (3, 0, "eval"),
        (3, 0, "total"),
        (3, 190, "prompt"),
        (3, 190, "eval"),
        (3, 190, "total"),
    ]
    assert timings[1].tokens == 188 and timings[1].tokens_per_s == 72.90


def test_reference_corpus_every_known_line_is_typed() -> None:
    lines = (DATA / "reference_b11434.log").read_text().splitlines()
    events = LogParser().parse_lines(lines)
    assert len(events) == len(lines)
    raw = [e.line for e in events if e.kind == "raw"]
    # Only lines with no dashboard meaning stay raw.
    for line in raw:
        assert any(
            s in line
            for s in (
                "initializing ...",
                "verbosity",
                "security:",
                "offloaded",
                "full capacity",
                "threadpool",
                "prompt cache is enabled",
                "context checkpoints enabled",
                "failed to find free space",
                "need to evaluate",
                "n_past was set",
                "draft acceptance",
            )
        ), line
    kinds = {e.kind for e in events}
    expected = set(ev.EVENT_KINDS) - {"raw", "request_done", "prompt_done", "slot_init"}
    assert expected - kinds <= {"slot_init"}, expected - kinds


def test_json_lines_have_kind_and_numbers_as_numbers() -> None:
    events = parse_text((DATA / "reference_b11434.log").read_text())
    for event in events:
        data = orjson.loads(orjson.dumps(event.to_json()))
        assert data["kind"] == event.kind
        for name, value in data.items():
            if name in ("ms", "size_mib", "n_tokens", "tokens", "progress", "n_ctx", "n_ctx_train"):
                assert isinstance(value, int | float) or value is None, (name, value)


LINE_PARTS = st.sampled_from(
    [
        "0.00.000.001 ",
        "I ",
        "W ",
        "E ",
        "slot ",
        "srv  ",
        "que  ",
        "  operator(): ",
        "print_timing: ",
        "id  0 | ",
        "task -1 | ",
        "task 99999999999999999999999 | ",
        "prompt eval time = ",
        "ms / ",
        "tokens",
        "n_tokens = ",
        "9" * 5000,
        "-1",
        "nan",
        "inf",
        "(",
        ")",
        "[",
        ", end)",
        "memory_seq_rm ",
        "created context checkpoint ",
        " of ",
        "size = ",
        " MiB",
        "selected slot by ",
        "LCP similarity, f_sim_best = ",
        "(> ",
        " thold)",
        "stop processing: ",
        "truncated = ",
        "new prompt, ",
        "n_ctx_slot = ",
        "llama_context: ",
        "print_info: ",
        " = ",
        "build ",
        "load_tensors: ",
        "buffer size = ",
        "llama_kv_cache: ",
        "cells, ",
        "layers, ",
        "seqs)",
        '{"type":"log","msg":',
        '"time":',
        "}",
        "\x1b[31m",
        "\r",
        "\n",
        "\x00",
        "\ud800",
        "task id = ",
        "error: ",
        "exceeds the available context size (",
        "purging slot ",
        " with ",
        "loading model '",
        "'",
        "listening on ",
    ]
)


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.lists(LINE_PARTS, max_size=25).map("".join),
        st.lists(st.one_of(LINE_PARTS, st.text(max_size=5)), max_size=25).map("".join),
    )
)
def test_parser_never_raises(line: str | bytes) -> None:
    parser = LogParser()
    event = parser.parse_line(line)
    assert isinstance(event, ev.LogEvent)
    assert event.kind in ev.EVENT_KINDS
    data = json.loads(json.dumps(event.to_json()))
    assert data["kind"] == event.kind
    # the batch fast path must agree with the careful path
    again = LogParser().parse_lines([line])
    assert again[0].kind == event.kind
