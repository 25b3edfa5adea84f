"""One journal row as the fields of one OpenTelemetry span (GenAI semantic conventions + ctxbudget.*).

Pure data, no OpenTelemetry import: the exporter turns a SpanFields into a span. Only counts, names
and structural descriptions go in; never prompt or response text, never headers (they may hold keys).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from tui.core.anatomy.model import CATEGORIES
from tui.core.records import RequestRecord
from tui.core.redact import redact_text
from tui.core.report.summary import is_model_request

OPERATION = "chat"
PROVIDER = "llama.cpp"
# A provisional row of a request still being answered (state "in_flight") gets no span: its final row does.
STATE_FIELD = "state"
IN_FLIGHT = "in_flight"
CLIENT_GONE = "client disconnected"
MAX_TEXT = 300  # error and cache-break descriptions are cut here
MAX_MCP_SERVERS = 50  # MCP server names come from request bodies: bound the attribute count
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

AttributeValue = str | bool | int | float | Sequence[str]


@dataclass(frozen=True)
class SpanFields:
    """What one span carries: name, real start and end (epoch ns), attributes, error text if it failed."""

    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue]
    error: str | None = None
    trace_id: int = 0
    span_id: int = 0


def span_ids(record: RequestRecord) -> tuple[int, int]:
    """Trace and span id derived from the row, so a row exported twice (a worker restarted after the
    commit but before its acknowledgement resends the capture) is the same span to the receiver."""
    seed = f"{record.ts!r}|{record.id}|{record.session_id}|{record.method} {record.path}|{record.model}"
    digest = hashlib.blake2b(seed.encode("utf-8", "surrogatepass"), digest_size=24).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:], "big") or 1
    return trace_id, span_id


def server_attributes(upstream: str) -> dict[str, AttributeValue]:
    """server.address and server.port of the llama-server URL (never its user or password)."""
    try:
        parts = urlsplit(upstream)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return {}
    if not parts.hostname:
        return {}
    return {"server.address": parts.hostname, "server.port": port}


def attribute_key_part(name: str) -> str:
    """A server name as one dot-free attribute key segment (other characters become _)."""
    return _KEY_UNSAFE.sub("_", name)[:64] or "_"


def span_fields(record: RequestRecord) -> SpanFields | None:
    """The span of a finished model request; None for other rows (GETs, count_tokens, in-flight rows)."""
    if not is_model_request(record) or getattr(record, STATE_FIELD, None) == IN_FLIGHT:
        return None
    start_ns = round(record.ts * 1e6) * 1000  # microseconds: what a float epoch time holds exactly
    end_ns = start_ns + int(max(record.total_ms or record.ttfb_ms or 0.0, 0.0) * 1e6)
    attrs: dict[str, AttributeValue] = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": PROVIDER,
        "http.response.status_code": record.status,
        "ctxbudget.kind": record.kind,
        "ctxbudget.dialect": record.dialect,
        "ctxbudget.stream": record.stream,
    }
    if record.id > 0:
        attrs["ctxbudget.journal.row_id"] = record.id
    if record.model:
        attrs["gen_ai.request.model"] = record.model
    if record.session_id:
        attrs["gen_ai.conversation.id"] = record.session_id
    if record.user:
        attrs["user.name"] = record.user
    _usage(record, attrs)
    _anatomy(record, attrs)
    _cache_break(record, attrs)
    _savings(record, attrs)
    if record.ttfb_ms is not None:
        attrs["ctxbudget.ttfb_ms"] = float(record.ttfb_ms)
    if record.unparsed_reason:
        attrs["ctxbudget.unparsed_reason"] = _short(record.unparsed_reason)
    error = _error(record, attrs)
    name = f"{OPERATION} {record.model}" if record.model else OPERATION
    trace_id, span_id = span_ids(record)
    return SpanFields(name, start_ns, end_ns, attrs, error, trace_id, span_id)


def _usage(record: RequestRecord, attrs: dict[str, AttributeValue]) -> None:
    usage = record.usage
    if usage.prompt_tokens is not None:  # the server's prompt count includes the cached tokens
        attrs["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        if usage.cached_tokens is not None:
            attrs["gen_ai.usage.cache_read.input_tokens"] = min(usage.cached_tokens, usage.prompt_tokens)
    if usage.output_tokens is not None:
        attrs["gen_ai.usage.output_tokens"] = usage.output_tokens
    if usage.stop_reason:
        attrs["gen_ai.response.finish_reasons"] = [usage.stop_reason]
    if usage.response_model:
        attrs["gen_ai.response.model"] = usage.response_model


def _anatomy(record: RequestRecord, attrs: dict[str, AttributeValue]) -> None:
    anatomy = record.anatomy
    if anatomy is None:
        return
    for category in CATEGORIES:
        attrs[f"ctxbudget.context.{category}.tokens"] = int(anatomy.categories.get(category, 0))
    attrs["ctxbudget.context.total_tokens"] = anatomy.total_tokens
    attrs["ctxbudget.context.counter"] = anatomy.counter
    attrs["ctxbudget.context.exact"] = anatomy.exact
    servers = sorted(anatomy.mcp_servers.items(), key=lambda item: -int(item[1].get("tokens", 0)))
    for server, entry in servers[:MAX_MCP_SERVERS]:
        attrs[f"ctxbudget.mcp.{attribute_key_part(server)}.tokens"] = int(entry.get("tokens", 0))
    if servers:
        attrs["ctxbudget.mcp.servers"] = [name for name, _ in servers[:MAX_MCP_SERVERS]]


def _cache_break(record: RequestRecord, attrs: dict[str, AttributeValue]) -> None:
    cb = record.cache_break
    if cb is None:
        return
    attrs["ctxbudget.cache_break.where"] = cb.where
    attrs["ctxbudget.cache_break.cause"] = cb.cause
    attrs["ctxbudget.cache_break.reason"] = _short(cb.description)
    attrs["ctxbudget.cache_break.reusable_prefix_tokens"] = cb.reusable_prefix_tokens
    if cb.server_reused_tokens is not None:
        attrs["ctxbudget.cache_break.server_reused_tokens"] = cb.server_reused_tokens


def _savings(record: RequestRecord, attrs: dict[str, AttributeValue]) -> None:
    for by, value in (
        ("transforms", record.transform_saved_tokens),
        ("mcp_switches", record.mcp_saved_tokens),
        ("compaction", record.compaction_saved_tokens),
    ):
        if value is not None:
            attrs[f"ctxbudget.saved_tokens.{by}"] = value


def _error(record: RequestRecord, attrs: dict[str, AttributeValue]) -> str | None:
    """The span's error description (None: not an error); sets error.type per the conventions."""
    if record.error == CLIENT_GONE:
        attrs["ctxbudget.client_disconnected"] = True
        if record.status < 400:
            return None
    if record.status >= 400:
        attrs["error.type"] = str(record.status)
        upstream_said = record.error and record.error != CLIENT_GONE
        return _short(record.error) if upstream_said and record.error else f"HTTP {record.status}"
    if record.error:
        attrs["error.type"] = "upstream_error"
        return _short(record.error)
    return None


def _short(text: str) -> str:
    first = redact_text(text).strip().splitlines()[0] if text.strip() else ""
    return first[:MAX_TEXT]
