"""ProxyMetrics on hand-built rows and snapshots: labels, optional fields, gauges that follow the server."""

from __future__ import annotations

import dataclasses

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tui.core.anatomy.model import Anatomy
from tui.core.poll.snapshots import ServerSnapshot, SlotSnapshot
from tui.core.prom import ProxyMetrics
from tui.core.prom.metrics import MCP_SERVER_LABELS_SEEN
from tui.core.records import RequestRecord, Usage


@dataclasses.dataclass(frozen=True)
class RecordWithSavings(RequestRecord):
    """A row with the optional savings/energy fields the journal may record later."""

    transform_saved_tokens: int | None = None
    mcp_saved_tokens: int | None = None
    energy_j: float | None = None


def scrape(metrics: ProxyMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for s in family.samples
    }


def test_rows_counted_by_kind_with_savings_when_recorded() -> None:
    metrics = ProxyMetrics()
    main = RecordWithSavings(
        id=1, ts=1.0, method="POST", path="/v1/messages", status=200, kind="main", dialect="anthropic",
        ttfb_ms=250.0, total_ms=1500.0, usage=Usage(prompt_tokens=5000, cached_tokens=4000, output_tokens=50),
        transform_saved_tokens=120, mcp_saved_tokens=900, energy_j=12.5,
    )
    count = RequestRecord(
        id=2, ts=2.0, method="POST", path="/v1/messages/count_tokens", status=200, kind="count_tokens",
        dialect="anthropic", usage=Usage(prompt_tokens=777),
    )
    gone = RequestRecord(id=3, ts=3.0, method="POST", path="/v1/chat/completions", status=200, kind="main",
                         dialect="openai", error="client disconnected", total_ms=80.0)
    for row in (main, count, gone):
        metrics.observe(row)
    got = scrape(metrics)
    assert got[("ctxbudget_requests_total", frozenset({("kind", "main"), ("status", "200")}))] == 2
    assert got[("ctxbudget_requests_total", frozenset({("kind", "count_tokens"), ("status", "200")}))] == 1
    assert ("ctxbudget_requests_total", frozenset({("kind", "other"), ("status", "200")})) not in got
    assert got[("ctxbudget_prompt_tokens_total", frozenset({("kind", "main")}))] == 5000  # not count_tokens
    assert got[("ctxbudget_prompt_cached_tokens_total", frozenset({("kind", "main")}))] == 4000
    assert got[("ctxbudget_request_failures_total", frozenset({("kind", "main")}))] == 1
    assert got[("ctxbudget_saved_tokens_total", frozenset({("by", "transforms")}))] == 120
    assert got[("ctxbudget_saved_tokens_total", frozenset({("by", "mcp_switches")}))] == 900
    assert got[("ctxbudget_gpu_energy_joules_total", frozenset())] == 12.5
    le = frozenset({("kind", "main"), ("le", "0.25")})
    assert got[("ctxbudget_ttfb_seconds_bucket", le)] == 1
    assert got[("ctxbudget_request_duration_seconds_sum", frozenset({("kind", "main")}))] == 1.58


def test_server_gauges_follow_the_latest_snapshot() -> None:
    metrics = ProxyMetrics()
    slots = (SlotSnapshot(0, 4096, True, n_prompt_tokens=1024), SlotSnapshot(1, 4096, False))
    metrics.observe_server(ServerSnapshot(ts=10.0, state="up", url="u", model="qwen", n_slots=2,
                                          n_ctx_slot=4096, slots=slots))
    got = scrape(metrics)
    assert got[("ctxbudget_server_state", frozenset({("state", "up")}))] == 1
    assert got[("ctxbudget_slot_fill_ratio", frozenset({("slot", "0")}))] == 0.25
    assert got[("ctxbudget_server_slots_busy", frozenset())] == 1
    assert got[("ctxbudget_server_info", frozenset({("model", "qwen")}))] == 1

    metrics.observe_server(ServerSnapshot(ts=20.0, state="down", url="u", error="refused"))
    got = scrape(metrics)
    assert got[("ctxbudget_server_state", frozenset({("state", "up")}))] == 0
    assert got[("ctxbudget_server_state", frozenset({("state", "down")}))] == 1
    assert not any(name == "ctxbudget_slot_fill_ratio" for name, _ in got)  # stale slots dropped
    assert not any(name == "ctxbudget_server_info" for name, _ in got)
    assert got[("ctxbudget_server_last_poll_timestamp_seconds", frozenset())] == 20.0


def test_own_registry_not_the_global_one() -> None:
    ProxyMetrics()
    ProxyMetrics()  # a second instance must not clash on metric names
    assert "ctxbudget_requests" not in {m.name for m in REGISTRY.collect()}


def _mcp_row(i: int, server: str) -> RequestRecord:
    anatomy = Anatomy(
        dialect="anthropic", counter="tiktoken", exact=False, categories={"mcp_tools": 10},
        mcp_servers={server: {"tokens": 10, "tools": 1}},
    )
    return RequestRecord(
        id=i, ts=float(i), method="POST", path="/v1/messages", status=200, kind="main", dialect="anthropic",
        usage=Usage(prompt_tokens=10), anatomy=anatomy,
    )


def test_mcp_server_labels_are_bounded() -> None:
    metrics = ProxyMetrics(mcp_servers=["filesystem"])
    for i in range(2000):  # a hostile client inventing a server name per request
        metrics.observe(_mcp_row(i, f"evil-{i}"))
    metrics.observe(_mcp_row(2001, "filesystem"))
    got = scrape(metrics)
    servers = {dict(labels)["server"]: value for (name, labels), value in got.items()
               if name == "ctxbudget_mcp_tool_tokens_total"}
    assert len(servers) == MCP_SERVER_LABELS_SEEN + 2  # the first names seen, "other", the configured one
    assert servers["filesystem"] == 10
    assert servers["other"] == (2000 - MCP_SERVER_LABELS_SEEN) * 10
    assert sum(servers.values()) == 2001 * 10  # every token still counted
    assert len(metrics.exposition().splitlines()) < 400
