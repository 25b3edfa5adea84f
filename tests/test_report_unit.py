"""Pure unit tests of the report's percentiles, buckets, charts, prices, aggregation and formats."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import time
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tui.core.anatomy.model import CATEGORIES, Anatomy
from tui.core.records import RequestRecord, Usage
from tui.core.report import (
    SIZE_LABELS,
    PriceEntry,
    ReportSettings,
    build_report,
    parse_since,
    percentile,
    render_report,
    report_settings_from_dict,
    size_bucket,
    sparkline,
    summarize,
    summary_for,
)
from tui.core.report.stats import SIZE_BOUNDS, bar
from tui.core.report.summary import downsample, is_model_request

values_st = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=200)


@given(values_st, st.floats(min_value=0, max_value=100))
def test_percentile_is_an_observed_value_with_its_rank(values: list[int], q: float) -> None:
    got = percentile(values, q)
    assert got in values
    ordered = sorted(values)
    # Nearest rank: at least q% of the values are <= the result, and fewer are < it.
    assert sum(v <= got for v in ordered) >= q / 100 * len(ordered) - 1e-9
    assert sum(v < got for v in ordered) < max(1, math.ceil(q / 100 * len(ordered)))


@given(values_st, st.floats(min_value=0, max_value=100), st.floats(min_value=0, max_value=100))
def test_percentile_grows_with_q(values: list[int], a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert percentile(values, lo) <= percentile(values, hi)  # type: ignore[operator]


def test_percentile_edges() -> None:
    data = list(range(1, 101))
    assert percentile(data, 100) == max(data) and percentile(data, 0) == min(data)
    assert percentile(data, 95) == data[94]  # 95th of 100 ordered values
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(data, 101)


@given(st.integers(min_value=0, max_value=10**7))
def test_size_bucket_bounds(tokens: int) -> None:
    label = size_bucket(tokens)
    index = SIZE_LABELS.index(label)
    low = 0 if index == 0 else SIZE_BOUNDS[index - 1]
    high = SIZE_BOUNDS[index] if index < len(SIZE_BOUNDS) else math.inf
    assert low <= tokens < high


def test_size_bucket_edges() -> None:
    for bound, below, above in zip(SIZE_BOUNDS, SIZE_LABELS[:-1], SIZE_LABELS[1:], strict=True):
        assert size_bucket(bound - 1) == below and size_bucket(bound) == above


@given(st.lists(st.floats(min_value=0, max_value=1e9), max_size=50))
def test_sparkline_one_char_per_value_peak_is_full(values: list[float]) -> None:
    line = sparkline(values)
    assert len(line) == len(values)
    if values and max(values) > 0:
        assert line[values.index(max(values))] == "█"


def test_bar_scales_to_width() -> None:
    assert bar(10, 10, 20) == "█" * 20
    assert bar(5, 10, 20) == "█" * 10
    assert bar(0, 10, 20) == "" and bar(3, 0, 20) == ""
    assert len(bar(1, 3, 9)) == 3


@given(st.lists(st.integers(min_value=0, max_value=10**6), max_size=400))
def test_downsample_keeps_peak_and_bounds_length(values: list[int]) -> None:
    out = downsample(values, 24)
    assert len(out) == min(len(values), 24)
    if values:
        assert max(out) == max(values)


def test_parse_since() -> None:
    now = 1_800_000_000.0
    assert parse_since("2h", now) == now - 7200
    assert parse_since("7d", now) == now - 7 * 86400
    assert parse_since("30m", now) == now - 1800
    assert parse_since("2026-11-20", now) == datetime(2026, 11, 20).timestamp()
    for bad in ("yesterday", "2h30", "-1d", "2026-13-01"):
        with pytest.raises(ValueError, match="expected a duration"):
            parse_since(bad, now)


def test_price_config_parsing_and_errors() -> None:
    settings = report_settings_from_dict({
        "prices_date": "2026-12-01",
        "prices": [
            {"name": "Local-equivalent", "model_pattern": "qwen*", "input": 1, "cached_input": 0.1,
             "output": 2},
            {"name": "Other", "input": 2.5, "cached_input": 0.25, "output": 10, "currency": "EUR"},
        ],
    }, "c.toml")
    assert settings.prices_date == "2026-12-01"
    assert settings.prices[0] == PriceEntry("Local-equivalent", "qwen*", 1.0, 0.1, 2.0, "USD")
    assert settings.prices[1].model_pattern == "Other" and settings.prices[1].currency == "EUR"
    assert settings.price_for("Qwen3-Coder") is settings.prices[0]
    assert ReportSettings().price_for("claude-sonnet-4-5-20250929") is not None
    for data, needle in (
        ({"colour": 1}, "unknown key"),
        ({"prices": {"a": 1}}, "array of tables"),
        ({"prices": [{"name": "x", "input": 1, "output": 2}]}, "missing cached_input"),
        ({"prices": [{"name": "x", "input": -1, "cached_input": 0, "output": 2}]}, "price >= 0"),
        ({"prices": [{"name": "x", "input": 1, "cached_input": 0, "output": 2, "tier": 1}]}, "tier"),
        ({"prices_date": 2026}, "expected a string"),
    ):
        with pytest.raises(ValueError, match=needle) as info:
            report_settings_from_dict(data, "c.toml")
        assert "c.toml" in str(info.value)


@dataclasses.dataclass(frozen=True)
class RecordWithExtras(RequestRecord):
    """A journal row carrying the optional fields the journal does not record yet."""

    transform_saved_tokens: int | None = None
    mcp_saved_tokens: int | None = None
    energy_j: float | None = None


def record(i: int, prompt: int, cached: int, output: int, *, session: str = "s1", ts: float = 0.0,
           **extra: float) -> RequestRecord:
    categories = dict.fromkeys(CATEGORIES, 0)
    categories["system"] = prompt // 2
    categories["mcp_tools"] = prompt - prompt // 2
    anatomy = Anatomy("anthropic", "test", True, categories, {"github": {"tools": 1, "tokens": prompt // 3}})
    return RecordWithExtras(
        id=i, ts=ts or 1_790_000_000.0 + i * 60, method="POST", path="/v1/messages", status=200,
        session_id=session, kind="main", dialect="anthropic", ttfb_ms=10.0 * i, total_ms=20.0 * i,
        anatomy=anatomy, usage=Usage(prompt_tokens=prompt, cached_tokens=cached, output_tokens=output),
        **extra,  # type: ignore[arg-type]
    )


def test_summary_arithmetic_and_optional_fields() -> None:
    rows = [
        record(1, 1000, 0, 10, transform_saved_tokens=100, energy_j=2.0),
        record(2, 9000, 800, 20, transform_saved_tokens=50, energy_j=3.0),
        record(3, 40000, 9000, 30),
    ]
    health = RequestRecord(id=4, ts=rows[0].ts, method="GET", path="/health", status=200, kind="other")
    s = summarize([*rows, health], prices=[PriceEntry("P", "*", 2.0, 0.5, 8.0)])
    assert (s.requests, s.other_requests, s.usage_requests) == (3, 1, 3)
    assert (s.prompt_tokens, s.cached_tokens, s.output_tokens) == (50000, 9800, 60)
    assert s.reuse_rate == pytest.approx(9800 / 50000)
    assert s.effective_per_request == pytest.approx((50000 - 9800) / 3)
    assert s.categories["system"] == 500 + 4500 + 20000 and s.mcp_servers == {"github": 333 + 3000 + 13333}
    assert [b.requests for b in s.latency] == [1, 1, 1, 0, 0]
    assert s.transform_saved.tokens == 150 and s.transform_saved.recorded == 2
    assert s.mcp_saved.recorded == 0 and s.to_json()["saved_by_mcp_switches"]["note"] == "not recorded"
    assert s.energy_j == 5.0 and s.tokens_per_joule == pytest.approx((1000 + 10 + 8200 + 20) / 5.0)
    assert s.costs[0].total == pytest.approx(((50000 - 9800) * 2.0 + 9800 * 0.5 + 60 * 8.0) / 1e6)
    assert s.prompt_trend == (1000, 9000, 40000)
    assert not is_model_request(health)


def test_empty_summary_reports_unknowns() -> None:
    s = summarize([])
    assert s.requests == 0 and s.reuse_rate is None and s.prompt_p50 is None
    assert s.tokens_per_joule is None and s.to_json()["energy"]["note"] == "not recorded"
    for fmt in ("table", "md", "json", "csv"):
        assert render_report(build_report([]), fmt)


def test_grouping_by_session_and_day() -> None:
    day1 = datetime(2026, 11, 19, 10).timestamp()
    day2 = datetime(2026, 11, 20, 10).timestamp()
    rows = [
        record(1, 100, 0, 1, session="a", ts=day1),
        record(2, 200, 50, 2, session="b", ts=day1 + 60),
        record(3, 300, 100, 3, session="a", ts=day2),
    ]
    report = build_report(rows)
    assert [(s.session, s.requests) for s in report.sessions] == [("a", 2), ("b", 1)]
    assert [(d.day, d.requests) for d in report.days] == [("2026-11-19", 2), ("2026-11-20", 1)]
    assert [(x.session, x.day) for x in report.session_days] == [
        ("a", "2026-11-19"), ("b", "2026-11-19"), ("a", "2026-11-20"),
    ]
    assert summary_for(rows, session="a", day="2026-11-20").prompt_tokens == 300
    assert build_report(rows, session="b").overall.prompt_tokens == 200
    assert build_report(rows, since_ts=day2).overall.requests == 1

    table = render_report(report, "csv")
    parsed = list(csv.DictReader(io.StringIO(table)))
    assert len(parsed) == 3 and all(len(r) == len(parsed[0]) for r in parsed)
    assert [int(r["prompt_tokens"]) for r in parsed] == [100, 200, 300]
    md = render_report(report, "md")
    assert "## Trend" in md and "prompt tokens per day" in md  # a sparkline once there are two days
    assert json.loads(render_report(report, "json"))["days"][1]["day"] == "2026-11-20"
    with pytest.raises(ValueError, match="unknown report format"):
        render_report(report, "xml")


def test_markdown_escapes_pipes_in_session_ids() -> None:
    md = render_report(build_report([record(1, 10, 0, 1, session="a|b", ts=time.time())]), "md")
    assert "| a\\|b |" in md
