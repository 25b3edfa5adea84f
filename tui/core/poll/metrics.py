"""Parse llama-server's Prometheus /metrics text and derive throughputs from counter deltas."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tui.core.poll.snapshots import MetricsSnapshot

PREFIX = "llamacpp:"

# Snapshot field for each llama.cpp series we keep (names without the prefix).
_FIELDS: dict[str, str] = {
    "prompt_tokens_total": "prompt_tokens_total",
    "prompt_tokens_cached_total": "prompt_tokens_cached_total",
    "prompt_seconds_total": "prompt_seconds_total",
    "tokens_predicted_total": "tokens_predicted_total",
    "tokens_predicted_seconds_total": "tokens_predicted_seconds_total",
    "n_decode_total": "n_decode_total",
    "requests_processing": "requests_processing",
    "requests_deferred": "requests_deferred",
    "n_tokens_max": "n_tokens_max",
    # Speculative decoding (b11434; all 0 without a draft): tokens drafted, accepted, and draft calls.
    "spec_decode_num_draft_tokens_total": "spec_draft_tokens_total",
    "spec_decode_num_accepted_tokens_total": "spec_accepted_tokens_total",
    "spec_decode_num_drafts_total": "spec_drafts_total",
}


def parse_metrics_text(text: str) -> dict[str, float]:
    """Map each unlabelled `llamacpp:` sample name (prefix dropped) to its value."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels or not sample.name.startswith(PREFIX):
                continue
            values[sample.name[len(PREFIX):]] = float(sample.value)
    return values


def _rate(d_tokens: float, d_seconds: float) -> float | None:
    return d_tokens / d_seconds if d_tokens > 0 and d_seconds > 0 else None


def build_metrics_snapshot(
    values: dict[str, float], ts: float, previous: MetricsSnapshot | None = None
) -> MetricsSnapshot:
    """Build a snapshot; throughputs come from counters, not the per-scrape gauges (they reset on scrape)."""
    fields = {dest: values.get(src, 0.0) for src, dest in _FIELDS.items()}
    snap = MetricsSnapshot(ts=ts, **fields)
    if previous is None or snap.prompt_tokens_total < previous.prompt_tokens_total:
        # First scrape, or counters went backwards: the server restarted.
        return snap
    d_prompt = snap.prompt_tokens_total - previous.prompt_tokens_total
    d_prompt_s = snap.prompt_seconds_total - previous.prompt_seconds_total
    d_pred = snap.tokens_predicted_total - previous.tokens_predicted_total
    d_pred_s = snap.tokens_predicted_seconds_total - previous.tokens_predicted_seconds_total
    d_cached = max(0.0, snap.prompt_tokens_cached_total - previous.prompt_tokens_cached_total)
    d_drafted = snap.spec_draft_tokens_total - previous.spec_draft_tokens_total
    d_accepted = snap.spec_accepted_tokens_total - previous.spec_accepted_tokens_total
    return MetricsSnapshot(
        ts=ts,
        **fields,
        prompt_tokens_per_s=_rate(d_prompt, d_prompt_s),
        predicted_tokens_per_s=_rate(d_pred, d_pred_s),
        prompt_tokens_delta=max(0.0, d_prompt),
        prompt_tokens_cached_delta=d_cached,
        spec_acceptance=d_accepted / d_drafted if d_drafted > 0 and d_accepted >= 0 else None,
    )
