"""OpenTelemetry export end to end: real requests through `ctxbudget proxy` to a real llama-server, spans
sent by the analysis worker over OTLP/HTTP to a real Arize Phoenix (installed once into a cached venv),
read back through Phoenix's REST API and compared with the journal's rows."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.eventually import eventually as eventually_async
from support.eventually import eventually_sync as eventually
from support.llama import RunningServer, free_port
from support.phoenix import RunningPhoenix, install_phoenix, start_phoenix
from support.proxy_process import ProxyProcess, start_proxy

from tui.core.anatomy.model import CATEGORIES
from tui.core.config import OtelSettings, settings_from_dict
from tui.core.journal.writer import JournalReader
from tui.core.otel.spans import span_fields
from tui.core.proxy.service import ProxyService
from tui.core.records import RequestRecord, Usage

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.timeout(900)]

SESSION = "otel-test-session-0001"
SECRET_MARK = "zebra-quartz-7731"  # prompt text that must never reach a span
SYSTEM = f"You are a careful coding agent ({SECRET_MARK}) that reads files before editing them. " * 8
TOOLS = [
    {"name": "mcp__github__create_issue", "description": "Create a GitHub issue. " * 6,
     "input_schema": {"type": "object", "properties": {"title": {"type": "string"}}}},
    {"name": "Bash", "description": "Run a shell command. " * 4,
     "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
]
HEADERS_ENV = "CTXBUDGET_TEST_OTEL_HEADERS"
FAST_BATCHES = {"OTEL_BSP_SCHEDULE_DELAY": "200"}  # the SDK's own variable: batches every 0.2 s, not 5 s


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPhoenix]:
    server = start_phoenix(install_phoenix(), tmp_path_factory.mktemp("phoenix"))
    yield server
    server.stop()


def otel_config(endpoint: str, upstream: str, headers_env: str = "") -> str:
    return (
        f'[otel]\nendpoint = "{endpoint}"\nheaders_env = "{headers_env}"\nservice_name = "ctxbudget-test"\n'
        f'timeout = 5.0\n[server]\nurl = "{upstream}"\n[anatomy]\nmcp_servers = ["github"]\n'
    )


def message(system: str, turns: list[tuple[str, str]], max_tokens: int = 8) -> dict[str, Any]:
    return {
        "model": "claude-haiku-4-5", "max_tokens": max_tokens, "temperature": 0, "system": system,
        "tools": TOOLS, "messages": [{"role": role, "content": text} for role, text in turns],
    }


def send_conversation(proxy: ProxyProcess) -> None:
    """Three turns of one session (the last edits turn 0: a cache break) and one the server refuses."""
    first = [("user", f"open an issue about the login bug {SECRET_MARK}")]
    second = [*first, ("assistant", "Which repository?"), ("user", "the web app")]
    edited = [("user", "open an issue about the logout bug"), *second[1:]]
    headers = {"x-claude-code-session-id": SESSION}
    with httpx.Client(base_url=proxy.url, headers=headers, timeout=120) as http:
        for turns in (first, second, edited):
            r = http.post("/v1/messages", json=message(SYSTEM, turns))
            assert r.status_code == 200, r.text
        too_long = "word " * 12000  # past the fixture server's 8192-token context: an upstream error
        r = http.post("/v1/messages", json=message(SYSTEM, [("user", too_long)]))
        assert r.status_code >= 400, r.text


def model_rows(proxy: ProxyProcess, count: int) -> list[RequestRecord]:
    rows = [r for r in JournalReader(proxy.journal_path).latest(50) if r.method == "POST"]
    assert len(rows) == count, [(r.id, r.path, r.status) for r in rows]
    return sorted(rows, key=lambda r: r.id)


def otel_health(proxy: ProxyProcess) -> dict[str, Any]:
    """The proxy's /health "otel" counts ({} until the worker has reported them)."""
    otel = proxy.health()["otel"]
    return otel if isinstance(otel, dict) else {}


def iso_ns(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1e6) * 1000


def test_spans_with_genai_attributes_arrive_in_phoenix(
    phoenix: RunningPhoenix, shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    proxy = start_proxy(
        shared_llama_server.url, tmp_path / "proxy",
        config_text=otel_config(phoenix.url, shared_llama_server.url, HEADERS_ENV),
        env_extra={HEADERS_ENV: f"authorization=Bearer%20{phoenix.admin_secret}", **FAST_BATCHES},
    )
    try:
        send_conversation(proxy)
        eventually(lambda: otel_health(proxy).get("exported") == 4, timeout=60,
                   seen=lambda: f"health: {proxy.health()}\n{proxy.output()[-2000:]}")
        status = otel_health(proxy)
        assert status["failed"] == 0 and status["pending"] == 0 and status["last_error"] is None, status
        rows = model_rows(proxy, 4)
        by_row: dict[int, dict[str, Any]] = {}

        def all_arrived() -> bool:
            by_row.clear()
            for span in phoenix.spans():
                row_id = span["attributes"].get("ctxbudget.journal.row_id")
                if row_id in {r.id for r in rows}:
                    by_row[row_id] = span
            return len(by_row) == len(rows)

        eventually(all_arrived, timeout=60, seen=lambda: f"spans for rows {sorted(by_row)}")
    finally:
        assert proxy.stop() == 0, proxy.output()

    for row in rows:
        span = by_row[row.id]
        attrs = span["attributes"]
        assert span["name"] == f"chat {row.model}"
        assert attrs["gen_ai.operation.name"] == "chat"
        assert attrs["gen_ai.provider.name"] == "llama.cpp"
        assert attrs["gen_ai.request.model"] == row.model == "claude-haiku-4-5"
        assert attrs["gen_ai.conversation.id"] == row.session_id == SESSION
        assert attrs["http.response.status_code"] == row.status
        assert attrs["server.address"] == "127.0.0.1"
        assert attrs["server.port"] == int(shared_llama_server.url.rsplit(":", 1)[1])
        # Real times of the request: start at the row's ts, end after total_ms (Phoenix keeps microseconds).
        assert abs(iso_ns(span["start_time"]) - int(row.ts * 1e9)) <= 2000
        assert row.total_ms is not None
        assert abs(iso_ns(span["end_time"]) - iso_ns(span["start_time"]) - row.total_ms * 1e6) <= 2000
        assert row.anatomy is not None
        for category in CATEGORIES:
            assert attrs[f"ctxbudget.context.{category}.tokens"] == row.anatomy.categories.get(category, 0)
        github = row.anatomy.mcp_servers["github"]["tokens"]
        assert github > 0 and attrs["ctxbudget.mcp.github.tokens"] == github
        assert attrs["ctxbudget.kind"] == row.kind
    ok_rows, failed = rows[:3], rows[3]
    for row in ok_rows:
        attrs = by_row[row.id]["attributes"]
        assert row.usage.prompt_tokens and row.usage.output_tokens is not None
        assert attrs["gen_ai.usage.input_tokens"] == row.usage.prompt_tokens
        assert attrs["gen_ai.usage.cache_read.input_tokens"] == row.usage.cached_tokens
        assert attrs["gen_ai.usage.output_tokens"] == row.usage.output_tokens
        # The model the server's reply names (llama-server: what it serves, whatever was asked for).
        assert row.usage.response_model and attrs["gen_ai.response.model"] == row.usage.response_model
        assert by_row[row.id]["status_code"] != "ERROR"
    assert ok_rows[1].usage.cached_tokens, "the second turn should reuse the first's prefix"
    edited = ok_rows[2]
    assert edited.cache_break is not None
    attrs = by_row[edited.id]["attributes"]
    assert attrs["ctxbudget.cache_break.where"] == edited.cache_break.where
    assert attrs["ctxbudget.cache_break.cause"] == edited.cache_break.cause
    assert attrs["ctxbudget.cache_break.reason"] == edited.cache_break.description
    assert by_row[failed.id]["status_code"] == "ERROR"
    assert by_row[failed.id]["attributes"]["error.type"] == str(failed.status)
    dump = json.dumps(list(by_row.values()))
    assert SECRET_MARK not in dump and "login bug" not in dump, "prompt text leaked into a span"
    assert phoenix.admin_secret not in dump


def test_rejected_export_is_counted_and_forwarding_goes_on(
    phoenix: RunningPhoenix, shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    # No auth header: Phoenix answers 401 to every batch. The requests still pass and are journaled.
    proxy = start_proxy(
        shared_llama_server.url, tmp_path / "proxy",
        config_text=otel_config(phoenix.url, shared_llama_server.url), env_extra=FAST_BATCHES,
    )
    try:
        send_conversation(proxy)
        eventually(lambda: otel_health(proxy).get("failed") == 4, timeout=60,
                   seen=lambda: f"health: {proxy.health()}")
        status = otel_health(proxy)
        assert status["exported"] == 0 and "401" in (status["last_error"] or ""), status
        assert proxy.health()["journaled"] == 4
        model_rows(proxy, 4)
    finally:
        assert proxy.stop() == 0, proxy.output()
    worker_log = (proxy.journal_path.parent / "analysis-worker.log").read_text()
    assert "spans not exported" in worker_log and "401" in worker_log, worker_log


def test_unreachable_endpoint_never_blocks_or_stops_the_proxy(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    proxy = start_proxy(
        shared_llama_server.url, tmp_path / "proxy",
        config_text=otel_config(nobody, shared_llama_server.url), env_extra=FAST_BATCHES,
    )
    try:
        send_conversation(proxy)
        eventually(lambda: otel_health(proxy).get("failed") == 4, timeout=90,
                   seen=lambda: f"health: {proxy.health()}")
        status = otel_health(proxy)
        assert status["endpoint"] == nobody + "/v1/traces"
        assert "Connection refused" in status["last_error"], status
        assert proxy.health()["journaled"] == 4
    finally:
        assert proxy.stop() == 0, proxy.output()
    worker_log = (proxy.journal_path.parent / "analysis-worker.log").read_text()
    assert "spans not exported to " + nobody in worker_log, worker_log


async def test_thread_analysis_exports_from_the_proxy_process(
    phoenix: RunningPhoenix, shared_llama_server: RunningServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(HEADERS_ENV, f"authorization=Bearer%20{phoenix.admin_secret}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    settings = settings_from_dict({
        "proxy": {"listen": "127.0.0.1:0", "upstream": shared_llama_server.url, "analysis": "thread"},
        "journal": {"path": str(tmp_path / "journal.sqlite3")},
        "otel": {"endpoint": phoenix.url, "headers_env": HEADERS_ENV},
    })
    service = ProxyService(settings)
    await service.start()
    try:
        async with httpx.AsyncClient(base_url=service.url, timeout=120) as http:
            body = message(SYSTEM, [("user", "thread mode")])
            r = await http.post("/v1/messages", json=body, headers={"x-claude-code-session-id": "thread-1"})
            assert r.status_code == 200, r.text
        assert await asyncio.to_thread(service.flush, 60.0)
        await eventually_async(lambda: (service.status()["otel"] or {}).get("exported") == 1, timeout=60,
                               seen=service.status)
    finally:
        await service.stop()
    (row,) = [r for r in JournalReader(tmp_path / "journal.sqlite3").latest(10) if r.method == "POST"]

    def thread_spans() -> list[dict[str, Any]]:
        return [s for s in phoenix.spans() if s["attributes"].get("gen_ai.conversation.id") == "thread-1"]

    (span,) = eventually(thread_spans, timeout=60)  # Phoenix stores what it received a moment later
    assert span["attributes"]["ctxbudget.journal.row_id"] == row.id
    assert span["attributes"]["gen_ai.usage.input_tokens"] == row.usage.prompt_tokens


def test_a_row_exported_twice_is_one_span(phoenix: RunningPhoenix, monkeypatch: pytest.MonkeyPatch) -> None:
    # A restarted analysis worker resends captures it had committed but not acknowledged: the journal
    # dedupes the row, and the span's ids come from the row, so the receiver keeps one span.
    from tui.core.otel import start_span_export

    monkeypatch.setenv(HEADERS_ENV, f"authorization=Bearer%20{phoenix.admin_secret}")
    row = RequestRecord(
        id=424242, ts=1_800_000_000.5, method="POST", path="/v1/messages", status=200, session_id="twice",
        kind="main", model="m", dialect="anthropic", total_ms=5.0, usage=Usage(prompt_tokens=10),
    )
    spans = start_span_export(OtelSettings(endpoint=phoenix.url, headers_env=HEADERS_ENV))
    assert spans is not None
    try:
        for _ in range(2):
            spans.export(row)
            spans.processor.force_flush()
    finally:
        spans.shutdown(5.0)
    status = spans.status()
    assert (status["exported"], status["failed"]) == (2, 0), status
    fields = span_fields(row)
    assert fields is not None

    def stored() -> list[dict[str, Any]]:
        return [s for s in phoenix.spans() if s["attributes"].get("ctxbudget.journal.row_id") == row.id]

    eventually(stored, timeout=60)
    (span,) = stored()
    assert span["context"] == {"trace_id": f"{fields.trace_id:032x}", "span_id": f"{fields.span_id:016x}"}


def test_export_goes_on_after_the_worker_is_killed(
    phoenix: RunningPhoenix, shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    proxy = start_proxy(
        shared_llama_server.url, tmp_path / "proxy",
        config_text=otel_config(phoenix.url, shared_llama_server.url, HEADERS_ENV),
        env_extra={HEADERS_ENV: f"authorization=Bearer%20{phoenix.admin_secret}", **FAST_BATCHES},
    )
    session = {"x-claude-code-session-id": "killed-worker"}
    try:
        with httpx.Client(base_url=proxy.url, headers=session, timeout=120) as http:
            for round_ in range(2):
                for i in range(2):
                    body = message(SYSTEM, [("user", f"round {round_} question {i}")])
                    assert http.post("/v1/messages", json=body).status_code == 200
                done = 2 * (round_ + 1)  # summed over both workers
                eventually(lambda n=done: otel_health(proxy).get("exported") == n, timeout=60,
                           seen=proxy.health)
                if round_ == 0:
                    pid = proxy.health()["worker_pid"]
                    assert isinstance(pid, int)
                    os.kill(pid, signal.SIGKILL)
                    eventually(lambda p=pid: proxy.health()["worker_pid"] not in (p, None), timeout=60,
                               seen=proxy.health)
        rows = model_rows(proxy, 4)
        status = otel_health(proxy)
        assert (status["failed"], status["dropped"], status["lost"]) == (0, 0, 0), status
    finally:
        assert proxy.stop() == 0, proxy.output()
    wanted = {r.id for r in rows}

    def stored() -> list[int]:
        ids = [s["attributes"].get("ctxbudget.journal.row_id") for s in phoenix.spans()
               if s["attributes"].get("gen_ai.conversation.id") == "killed-worker"]
        return sorted(i for i in ids if i in wanted)

    eventually(lambda: stored() == sorted(wanted), timeout=60, seen=stored)
