"""Parsing llama-server's /metrics text and deriving throughputs from counter deltas."""

from __future__ import annotations

import httpx
import pytest
from support.llama import RunningServer

from tui.core.poll.metrics import build_metrics_snapshot, parse_metrics_text
from tui.core.poll.slots import parse_models, parse_slot

SAMPLE = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed, excluding cached tokens
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1595
# TYPE llamacpp:prompt_tokens_cached_total counter
llamacpp:prompt_tokens_cached_total 400
# TYPE llamacpp:prompt_seconds_total counter
llamacpp:prompt_seconds_total 1.0
# TYPE llamacpp:tokens_predicted_total counter
llamacpp:tokens_predicted_total 188
# TYPE llamacpp:tokens_predicted_seconds_total counter
llamacpp:tokens_predicted_seconds_total 2.5
# TYPE llamacpp:prompt_tokens_seconds gauge
llamacpp:prompt_tokens_seconds 0
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 2
# TYPE llamacpp:spec_decode_num_accepted_tokens_per_pos_total counter
llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position="1"} 7
"""


def test_parse_keeps_unlabelled_llamacpp_series() -> None:
    values = parse_metrics_text(SAMPLE)
    assert values["prompt_tokens_total"] == 1595
    assert values["requests_deferred"] == 2
    assert not any(k.startswith("spec_decode_num_accepted_tokens_per_pos") for k in values)


def test_throughput_comes_from_counter_deltas_not_gauges() -> None:
    first = build_metrics_snapshot(parse_metrics_text(SAMPLE), ts=10.0)
    assert first.prompt_tokens_per_s is None and first.predicted_tokens_per_s is None
    assert first.cached_ratio == pytest.approx(400 / 1995)
    assert (first.prompt_tokens_total, first.prompt_seconds_total) == (1595, 1.0)
    later = dict(parse_metrics_text(SAMPLE))
    later.update(
        prompt_tokens_total=2595,
        prompt_seconds_total=1.5,
        prompt_tokens_cached_total=1400,
        tokens_predicted_total=288,
        tokens_predicted_seconds_total=3.5,
    )
    second = build_metrics_snapshot(later, ts=12.0, previous=first)
    assert second.prompt_tokens_per_s == pytest.approx(1000 / 0.5)
    assert second.predicted_tokens_per_s == pytest.approx(100 / 1.0)
    assert (second.prompt_tokens_delta, second.prompt_tokens_cached_delta) == (1000, 1000)
    restarted = build_metrics_snapshot({"prompt_tokens_total": 5}, ts=13.0, previous=second)
    assert restarted.prompt_tokens_per_s is None and restarted.prompt_tokens_delta == 0


def test_parses_a_real_scrape(shared_llama_server: RunningServer) -> None:
    with httpx.Client(timeout=10) as client:
        text = client.get(shared_llama_server.url + "/metrics").text
        models = client.get(shared_llama_server.url + "/v1/models").json()
    values = parse_metrics_text(text)
    for name in ("prompt_tokens_total", "tokens_predicted_total", "requests_processing", "n_decode_total"):
        assert name in values
    model_id, n_ctx_train = parse_models(models)
    assert model_id == models["data"][0]["id"] and n_ctx_train == models["data"][0]["meta"]["n_ctx_train"]


def test_slot_shapes_and_decode_rate() -> None:
    idle = parse_slot({"id": 1, "n_ctx": 4096, "speculative": False, "is_processing": False}, ts=1.0)
    assert (idle.id_task, idle.n_prompt_tokens, idle.n_decoded, idle.fill) == (None, 0, 0, 0.0)
    busy = {
        "id": 0,
        "n_ctx": 1000,
        "is_processing": True,
        "id_task": 7,
        "n_prompt_tokens": 250,
        "next_token": [{"has_next_token": True, "n_decoded": 10}],
    }
    first = parse_slot(busy, ts=1.0)
    assert first.decode_rate is None and first.fill == 0.25
    second = parse_slot({**busy, "next_token": [{"n_decoded": 40}]}, ts=1.5, previous=first, previous_ts=1.0)
    assert second.decode_rate == pytest.approx(60.0)
    other_task = parse_slot({**busy, "id_task": 8}, ts=2.0, previous=second, previous_ts=1.5)
    assert other_task.decode_rate is None
