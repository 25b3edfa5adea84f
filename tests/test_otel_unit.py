"""The pure parts of the OpenTelemetry export: row -> span fields, headers and URL, and the [otel] config
checks (the real export to a real receiver is tests/test_otel_phoenix.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest

from tui.core.anatomy.model import CATEGORIES, Anatomy
from tui.core.config import ConfigError, OtelSettings, settings_from_dict
from tui.core.otel import start_span_export
from tui.core.otel.spans import MAX_MCP_SERVERS, span_fields
from tui.core.otel.target import parse_headers, resolve_target, traces_url
from tui.core.records import CacheBreak, RequestRecord, Usage


def model_row(**changes: Any) -> RequestRecord:
    values: dict[str, Any] = dict(
        id=7,
        ts=1_800_000_000.25,
        method="POST",
        path="/v1/messages",
        status=200,
        session_id="sess-1",
        kind="main",
        model="qwen3-coder",
        dialect="anthropic",
        stream=True,
        ttfb_ms=120.0,
        total_ms=2500.0,
        anatomy=Anatomy(
            dialect="anthropic",
            counter="server",
            exact=True,
            categories={"system": 900, "tools": 300, "mcp_tools": 450, "history": 40},
            mcp_servers={"github": {"tokens": 400, "tools": 3}, "my.server/x": {"tokens": 50, "tools": 1}},
        ),
        usage=Usage(prompt_tokens=1700, cached_tokens=1500, output_tokens=42, stop_reason="end_turn"),
        cache_break=CacheBreak("tools[3]", "tools[3] schema changed (mcp__github__x)", 1200, 1100),
        transform_saved_tokens=30,
    )
    values.update(changes)
    return RequestRecord(**values)


def test_a_model_request_becomes_a_genai_chat_span() -> None:
    fields = span_fields(model_row())
    assert fields is not None
    a = fields.attributes
    assert fields.name == "chat qwen3-coder"
    assert fields.start_ns == 1_800_000_000_250_000_000
    assert fields.end_ns - fields.start_ns == 2_500_000_000
    assert fields.error is None
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "llama.cpp"
    assert a["gen_ai.request.model"] == "qwen3-coder" and a["gen_ai.conversation.id"] == "sess-1"
    assert a["gen_ai.usage.input_tokens"] == 1700  # the server's count, cached tokens included
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1500
    assert a["gen_ai.usage.output_tokens"] == 42
    assert a["gen_ai.response.finish_reasons"] == ["end_turn"]
    assert "gen_ai.response.model" not in a and "user.name" not in a
    assert {k for k in a if k.startswith("ctxbudget.context.") and k.endswith(".tokens")} == {
        f"ctxbudget.context.{c}.tokens" for c in CATEGORIES
    }
    assert a["ctxbudget.context.mcp_tools.tokens"] == 450 and a["ctxbudget.context.images.tokens"] == 0
    assert a["ctxbudget.context.total_tokens"] == 1690
    assert a["ctxbudget.mcp.github.tokens"] == 400
    assert a["ctxbudget.mcp.my_server_x.tokens"] == 50  # dots and slashes would nest the key
    assert a["ctxbudget.mcp.servers"] == ["github", "my.server/x"]
    assert a["ctxbudget.cache_break.where"] == "tools[3]" and a["ctxbudget.cache_break.cause"] == "content"
    assert a["ctxbudget.cache_break.reason"] == "tools[3] schema changed (mcp__github__x)"
    assert a["ctxbudget.cache_break.reusable_prefix_tokens"] == 1200
    assert a["ctxbudget.saved_tokens.transforms"] == 30 and "ctxbudget.saved_tokens.compaction" not in a
    assert a["ctxbudget.journal.row_id"] == 7


def test_the_team_user_is_on_the_span_when_the_row_has_one() -> None:
    fields = span_fields(dataclasses.replace(model_row(), user="alice"))
    assert fields is not None and fields.attributes["user.name"] == "alice"
    alone = span_fields(dataclasses.replace(model_row(), user=""))
    assert alone is not None and "user.name" not in alone.attributes


@pytest.mark.parametrize(
    ("changes", "error", "error_type"),
    [
        ({"status": 400}, "HTTP 400", "400"),
        (
            {"status": 502, "error": "ctxbudget proxy: upstream http://h:8080 unreachable: refused\nmore"},
            "ctxbudget proxy: upstream http://h:8080 unreachable: refused",
            "502",
        ),
        (
            {"error": "ctxbudget proxy: upstream http://h failed mid-response: reset"},
            "ctxbudget proxy: upstream http://h failed mid-response: reset",
            "upstream_error",
        ),
        ({"error": "client disconnected"}, None, None),
    ],
    ids=["http-400", "upstream-unreachable", "mid-response", "client-left"],
)
def test_upstream_errors_mark_the_span(
    changes: dict[str, Any], error: str | None, error_type: str | None
) -> None:
    fields = span_fields(model_row(**changes))
    assert fields is not None
    assert fields.error == error
    assert fields.attributes.get("error.type") == error_type


def test_secrets_in_an_error_text_are_redacted() -> None:
    fields = span_fields(model_row(status=502, error="upstream http://u:hunter2@h:8080 refused"))
    assert fields is not None and fields.error is not None and "hunter2" not in fields.error


@pytest.mark.parametrize(
    "changes",
    [{"method": "GET", "path": "/health"}, {"kind": "count_tokens"}, {"dialect": "", "usage": Usage()}],
    ids=["get", "count-tokens", "unparsed-no-usage"],
)
def test_rows_that_are_not_model_requests_get_no_span(changes: dict[str, Any]) -> None:
    assert span_fields(model_row(**changes)) is None


def test_mcp_servers_are_bounded_biggest_first() -> None:
    servers = {f"s{i}": {"tokens": i} for i in range(MAX_MCP_SERVERS + 30)}
    anatomy = Anatomy(dialect="openai", counter="tiktoken", exact=False, categories={}, mcp_servers=servers)
    fields = span_fields(model_row(anatomy=anatomy))
    assert fields is not None
    keys = [k for k in fields.attributes if k.startswith("ctxbudget.mcp.s") and k.endswith(".tokens")]
    assert len(keys) == MAX_MCP_SERVERS and f"ctxbudget.mcp.s{MAX_MCP_SERVERS + 29}.tokens" in keys


@pytest.mark.parametrize(
    ("endpoint", "url"),
    [
        ("http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"),
        ("http://127.0.0.1:6006/", "http://127.0.0.1:6006/v1/traces"),
        ("https://otel.example/v1/traces", "https://otel.example/v1/traces"),
        ("https://gw.example/otlp", "https://gw.example/otlp/v1/traces"),
    ],
)
def test_traces_url(endpoint: str, url: str) -> None:
    assert traces_url(endpoint) == url


def test_headers_parse_like_otel_exporter_otlp_headers() -> None:
    pairs, problem = parse_headers("authorization=Bearer%20abc, x-team = platform,", "H")
    assert problem is None and pairs == (("authorization", "Bearer abc"), ("x-team", "platform"))
    pairs, problem = parse_headers("authorization=ok,Bearer-secret-value", "H")
    assert pairs == () and problem is not None
    assert "H: entry 2 is not key=value" in problem and "secret" not in problem


def test_headers_come_from_the_named_variable_never_the_file() -> None:
    target = resolve_target("https://c:4318", "MY_HEADERS", "svc", 5.0, {"MY_HEADERS": "api-key=k1"})
    assert target.headers == (("api-key", "k1"),) and target.problem is None
    missing = resolve_target("http://c:4318", "MY_HEADERS", "svc", 5.0, {})
    assert missing.headers == () and "MY_HEADERS is not set" in (missing.problem or "")
    assert resolve_target("http://u:pw@c:4318", "", "svc", 5.0, {}).safe_url.count("pw") == 0


def test_export_is_off_by_default() -> None:
    assert settings_from_dict({}).otel == OtelSettings()
    assert start_span_export(OtelSettings()) is None


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"endpoint": "localhost:4318"}, "[otel] endpoint: 'localhost:4318' is not an http://"),
        ({"headers_env": "authorization=Bearer x"}, "[otel] headers_env: 'authorization=Bearer x' is not an"),
        ({"service_name": " "}, "[otel] service_name: must not be empty"),
        ({"timeout": 0}, "[otel] timeout: 0.0 must be greater than 0"),
        ({"endpoint": "http://c:4318", "headers": "x"}, "[otel] headers: unknown key"),
    ],
)
def test_bad_otel_config_names_key_and_fix(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        settings_from_dict({"otel": values}, "cfg.toml")
    assert str(err.value).startswith(f"cfg.toml: {message}"), str(err.value)


def test_spans_past_the_backlog_are_dropped_and_counted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tui.core.otel import exporter

    monkeypatch.setattr(exporter, "MAX_PENDING", 3)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # nothing leaves during the test
    spans = start_span_export(OtelSettings(endpoint="http://127.0.0.1:9", timeout=1.0))
    assert spans is not None
    try:
        for _ in range(5):
            spans.export(model_row())
        spans.export(model_row(method="GET"))  # not a model request: neither queued nor dropped
        status = spans.status()
        assert (status["queued"], status["pending"], status["dropped"]) == (3, 3, 2)
        assert "OpenTelemetry: 1 spans dropped so far" in caplog.text
    finally:
        spans.shutdown(0.1)


def test_span_ids_come_from_the_row() -> None:
    first, again, other = span_fields(model_row()), span_fields(model_row()), span_fields(model_row(id=8))
    assert first is not None and again is not None and other is not None
    assert (first.trace_id, first.span_id) == (again.trace_id, again.span_id)
    assert first.trace_id != other.trace_id and first.span_id != other.span_id
    assert 0 < first.trace_id < 2**128 and 0 < first.span_id < 2**64


def test_counts_are_summed_over_restarted_workers() -> None:
    from tui.core.otel.counts import combined, retire

    assert combined({}, None) is None  # export off
    dead = {
        "endpoint": "e",
        "queued": 5,
        "exported": 3,
        "failed": 1,
        "pending": 1,
        "dropped": 0,
        "lost": 0,
        "last_error": "x",
    }
    before = retire({}, dead)
    now = {
        "endpoint": "e",
        "queued": 2,
        "exported": 2,
        "failed": 0,
        "pending": 0,
        "dropped": 4,
        "lost": 0,
        "last_error": None,
    }
    assert combined(before, now) == {
        "endpoint": "e",
        "queued": 7,
        "exported": 5,
        "failed": 1,
        "pending": 0,
        "dropped": 4,
        "lost": 1,
        "last_error": None,
    }
    assert combined(before, None) == {
        "queued": 5,
        "exported": 3,
        "failed": 1,
        "pending": 0,
        "dropped": 0,
        "lost": 1,
        "last_error": None,
    }


@pytest.mark.parametrize(
    ("upstream", "attributes"),
    [
        ("http://127.0.0.1:8080", {"server.address": "127.0.0.1", "server.port": 8080}),
        ("https://user:pw@gpu-box.lan/v1", {"server.address": "gpu-box.lan", "server.port": 443}),
        ("http://[::1]:9000", {"server.address": "::1", "server.port": 9000}),
        ("http://h:99999", {}),
        ("", {}),
    ],
)
def test_server_attributes_name_host_and_port_only(upstream: str, attributes: dict[str, Any]) -> None:
    from tui.core.otel.spans import server_attributes

    assert server_attributes(upstream) == attributes


def test_auth_headers_over_plain_http_beyond_loopback_are_flagged() -> None:
    env = {"H": "authorization=Bearer%20t"}
    remote = resolve_target("http://otel.example:4318", "H", "svc", 5.0, env)
    assert remote.headers and "clear text over http:// to otel.example" in (remote.problem or "")
    assert resolve_target("https://otel.example", "H", "svc", 5.0, env).problem is None
    assert resolve_target("http://127.0.0.1:4318", "H", "svc", 5.0, env).problem is None
    assert resolve_target("http://[::1]:4318", "H", "svc", 5.0, env).problem is None


@dataclass(frozen=True)
class StatefulRow(RequestRecord):
    """A row with the journal's in-flight state column."""

    state: str = "done"


def test_a_provisional_in_flight_row_gets_no_span_its_final_row_does() -> None:
    base = model_row().__dict__
    assert span_fields(StatefulRow(**{**base, "state": "in_flight"})) is None
    assert span_fields(StatefulRow(**{**base, "state": "done"})) is not None
