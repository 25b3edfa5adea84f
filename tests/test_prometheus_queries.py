"""Every PromQL query in the README and in contrib/grafana/ctxbudget.json, run by a real Prometheus (Debian's
package) that scrapes a real `ctxbudget proxy` after real requests to a real llama-server: each one must
parse, evaluate without error or warning, and return data. The queries are read from those files here,
so the docs and the dashboard cannot drift from the metrics."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.eventually import eventually_sync as eventually
from support.llama import RunningServer
from support.prometheus import (
    RunningPrometheus,
    as_promql,
    data_part,
    find_prometheus,
    grafana_queries,
    readme_queries,
    start_prometheus,
)
from support.proxy_process import ProxyProcess, start_proxy

from tui.core.prom import METRICS_PATH

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DASHBOARD = REPO / "contrib" / "grafana" / "ctxbudget.json"
LONG_DESCRIPTION = "Create a GitHub issue in the given repository. " * 12 + "\n\nMore details. " * 20
TOOLS = [
    {"name": "mcp__github__create_issue", "description": LONG_DESCRIPTION,
     "input_schema": {"type": "object", "properties": {"title": {"type": "string"}}}},
    {"name": "Bash", "description": "Run a shell command.",
     "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
]
REQUESTS = 5  # four answered, one refused by the server (too long for its context)


def config(upstream: str) -> str:
    # trim_descriptions saves tokens on the long tool description: the saved-tokens queries get data.
    return (
        f'[server]\nurl = "{upstream}"\npoll_interval = 0.5\n[anatomy]\nmcp_servers = ["github"]\n'
        '[transforms]\nenabled = ["stabilize", "trim_descriptions"]\n'
    )


@pytest.fixture
def scraped_proxy(
    shared_llama_server: RunningServer, tmp_path: Path
) -> Iterator[tuple[ProxyProcess, RunningPrometheus]]:
    binary = find_prometheus()
    upstream = shared_llama_server.url
    proxy = start_proxy(upstream, tmp_path / "proxy", config_text=config(upstream))
    prometheus = start_prometheus(binary, tmp_path / "prometheus", f"127.0.0.1:{proxy.port}", METRICS_PATH)
    try:
        yield proxy, prometheus
    finally:
        prometheus.stop()
        assert proxy.stop() == 0, proxy.output()


def send_requests(proxy: ProxyProcess) -> None:
    session = {"x-claude-code-session-id": "prom-1"}
    with httpx.Client(base_url=proxy.url, headers=session, timeout=120) as http:
        turns: list[dict[str, str]] = []
        for i in range(REQUESTS - 1):
            turns = [*turns, {"role": "user", "content": f"open an issue about bug {i}"}]
            body = {"model": "claude-haiku-4-5", "max_tokens": 8, "temperature": 0,
                    "system": "You are a careful coding agent. " * 10, "tools": TOOLS, "messages": turns}
            r = http.post("/v1/messages", json=body)
            assert r.status_code == 200, r.text
            turns.append({"role": "assistant", "content": r.json()["content"][0].get("text") or "ok"})
        body = {"model": "claude-haiku-4-5", "max_tokens": 8,
                "messages": [{"role": "user", "content": "word " * 12000}]}
        assert http.post("/v1/messages", json=body).status_code >= 400


def has_data(answer: dict[str, Any]) -> bool:
    """A vector with a sample that is a number (not NaN), or a scalar that is one."""
    data = answer.get("data", {})
    if data.get("resultType") == "scalar":
        return not math.isnan(float(data["result"][1]))
    return any(not math.isnan(float(s["value"][1])) for s in data.get("result", []))


def test_queries_are_extracted_from_both_files() -> None:
    readme, dashboard = readme_queries(README), grafana_queries(DASHBOARD)
    assert len(readme) >= 7 and len(dashboard) >= 20
    assert all(q.count("(") == q.count(")") for q in readme + dashboard), "a query was cut while extracting"
    assert "label_values(ctxbudget_requests_total, instance)" in dashboard


def test_dashboard_imports_with_a_datasource_input_and_a_sane_layout() -> None:
    data = json.loads(DASHBOARD.read_text())
    assert [i["name"] for i in data["__inputs"]] == ["DS_PROMETHEUS"]
    panels = data["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        xs, ys = range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"])
        mine = {(x, y) for x in xs for y in ys}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
            assert 'instance=~"$instance"' in target["expr"], f"{panel['title']} ignores the Proxy variable"


def test_every_readme_and_dashboard_query_returns_data(
    scraped_proxy: tuple[ProxyProcess, RunningPrometheus],
) -> None:
    proxy, prometheus = scraped_proxy
    eventually(lambda: has_data(prometheus.query('up{job="ctxbudget"} == 1')), timeout=60,
               seen=lambda: prometheus.log()[-2000:])
    # Two rounds with a scrape between them: a labelled series appears with its first request, and
    # rate(), increase() and histogram_quantile() only see what grows after a series' first sample.
    for round_ in (1, 2):
        send_requests(proxy)
        total = REQUESTS * round_
        eventually(lambda n=total: proxy.health()["journaled"] == n, timeout=60, seen=proxy.health)
        eventually(lambda n=total: has_data(prometheus.query(f"sum(ctxbudget_requests_total) >= {n}")),
                   timeout=60, seen=lambda: prometheus.query("ctxbudget_requests_total"))
    eventually(
        lambda: has_data(prometheus.query('ctxbudget_server_state{state="up"} == 1'))
        and has_data(prometheus.query("ctxbudget_slot_tokens > 0")),
        timeout=60, seen=lambda: prometheus.query("ctxbudget_server_state"),
    )
    queries = {q: "README.md" for q in readme_queries(README)}
    queries.update({q: DASHBOARD.name for q in grafana_queries(DASHBOARD)})
    failures: list[str] = []
    for query, source in queries.items():
        promql = as_promql(query)
        whole = prometheus.query(promql)
        part = whole if data_part(promql) == promql else prometheus.query(data_part(promql))
        if whole.get("status") != "success" or whole.get("warnings"):
            failures.append(f"{source}: {query}\n  -> {json.dumps(whole)[:400]}")
        elif not has_data(part):
            failures.append(f"{source}: {query}\n  -> no data: {json.dumps(part)[:400]}")
    assert not failures, f"{len(failures)} of {len(queries)} queries failed:\n" + "\n".join(failures)
