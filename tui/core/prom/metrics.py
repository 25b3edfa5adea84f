"""Prometheus metrics of one proxy (own registry): traffic from journal rows, server state from polls."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tui.core.config import UNKNOWN_USER
from tui.core.poll.snapshots import ServerSnapshot
from tui.core.records import RequestRecord
from tui.core.report.summary import (
    ENERGY_FIELD,
    MCP_SAVED_FIELD,
    TRANSFORM_SAVED_FIELD,
    is_model_request,
)

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 300.0)
PROMPT_BUCKETS_TOKENS = (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144, 524288)
SERVER_STATES = ("loading", "up", "sleeping", "down")
# MCP server names come from request bodies: besides the configured ones, only the first this many
# distinct names seen get their own `server` label; later ones are counted as "other".
MCP_SERVER_LABELS_SEEN = 20
MCP_LABEL_CHARS = 64
OTHER_LABEL = "other"


def _number(record: RequestRecord, name: str) -> float | None:
    value = getattr(record, name, None)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class ProxyMetrics:
    """Counters, histograms and gauges; feed `observe` per journaled row and `observe_server` per poll."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        mcp_servers: Iterable[str] = (),
        team_users: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        # Team mode: the configured user names (asked per record: users may be added while running).
        self._team_users = team_users
        self._mcp_configured = frozenset(name[:MCP_LABEL_CHARS] for name in mcp_servers)
        self._mcp_seen: set[str] = set()
        r = self.registry
        self.requests = Counter(
            "ctxbudget_requests", "Requests through the proxy", ["kind", "status"], registry=r
        )
        self.failures = Counter(
            "ctxbudget_request_failures", "Requests with an upstream error or a client that left",
            ["kind"], registry=r,
        )
        self.ttfb = Histogram(
            "ctxbudget_ttfb_seconds", "Time to first response byte", ["kind"],
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.duration = Histogram(
            "ctxbudget_request_duration_seconds", "Total request time", ["kind"],
            buckets=LATENCY_BUCKETS_S, registry=r,
        )
        self.prompt_size = Histogram(
            "ctxbudget_prompt_size_tokens", "Prompt length per model request", ["kind"],
            buckets=PROMPT_BUCKETS_TOKENS, registry=r,
        )
        self.prompt_tokens = Counter(
            "ctxbudget_prompt_tokens", "Prompt tokens reported by the server", ["kind"], registry=r
        )
        self.cached_tokens = Counter(
            "ctxbudget_prompt_cached_tokens", "Prompt tokens taken from the server's prefix cache",
            ["kind"], registry=r,
        )
        self.output_tokens = Counter(
            "ctxbudget_output_tokens", "Generated tokens reported by the server", ["kind"], registry=r
        )
        self.category_tokens = Counter(
            "ctxbudget_context_tokens", "Prompt tokens by context category (anatomy)", ["category"],
            registry=r,
        )
        self.mcp_tokens = Counter(
            "ctxbudget_mcp_tool_tokens", "Tool-schema tokens per MCP server", ["server"], registry=r
        )
        self.saved_tokens = Counter(
            "ctxbudget_saved_tokens", "Prompt tokens saved, when the journal records it", ["by"], registry=r
        )
        self.energy = Counter(
            "ctxbudget_gpu_energy_joules", "GPU energy attributed to requests, when recorded", registry=r
        )
        # Team mode only (rows with a user): the `user` label is a configured name, "unknown" or "other".
        self.user_requests = Counter(
            "ctxbudget_user_requests", "Requests through the proxy per team user", ["user", "kind"],
            registry=r,
        )
        self.user_prompt_tokens = Counter(
            "ctxbudget_user_prompt_tokens", "Prompt tokens per team user", ["user"], registry=r
        )
        self.user_cached_tokens = Counter(
            "ctxbudget_user_prompt_cached_tokens", "Cached prompt tokens per team user", ["user"], registry=r
        )
        self.user_output_tokens = Counter(
            "ctxbudget_user_output_tokens", "Generated tokens per team user", ["user"], registry=r
        )
        self.server_state = Gauge(
            "ctxbudget_server_state", "1 for the llama-server state last seen", ["state"], registry=r
        )
        self.server_info = Gauge(
            "ctxbudget_server_info", "The model last seen on llama-server", ["model"], registry=r
        )
        self.slots = Gauge("ctxbudget_server_slots", "Slots of llama-server", registry=r)
        self.slots_busy = Gauge("ctxbudget_server_slots_busy", "Slots processing a task", registry=r)
        self.ctx_per_slot = Gauge("ctxbudget_server_slot_ctx_tokens", "Context size per slot", registry=r)
        self.slot_tokens = Gauge(
            "ctxbudget_slot_tokens", "Tokens held in a slot's KV cache", ["slot"], registry=r
        )
        self.slot_fill = Gauge(
            "ctxbudget_slot_fill_ratio", "Slot KV fill (tokens / n_ctx)", ["slot"], registry=r
        )
        self.last_poll = Gauge(
            "ctxbudget_server_last_poll_timestamp_seconds", "When llama-server was last polled", registry=r
        )
        for state in SERVER_STATES:
            self.server_state.labels(state).set(0)

    def observe(self, record: RequestRecord) -> None:
        """Count one journaled request (call from ProxyService's on_record)."""
        model = is_model_request(record)
        kind = record.kind if model else ("count_tokens" if record.kind == "count_tokens" else OTHER_LABEL)
        self.requests.labels(kind, str(record.status)).inc()
        if record.user:
            self._observe_user(record, kind, model)
        if record.error:
            self.failures.labels(kind).inc()
        if record.ttfb_ms is not None:
            self.ttfb.labels(kind).observe(record.ttfb_ms / 1000)
        if record.total_ms is not None:
            self.duration.labels(kind).observe(record.total_ms / 1000)
        if not model:
            return
        usage = record.usage
        if usage.prompt_tokens is not None:
            self.prompt_tokens.labels(kind).inc(usage.prompt_tokens)
            self.cached_tokens.labels(kind).inc(min(usage.cached_tokens or 0, usage.prompt_tokens))
        if usage.output_tokens:
            self.output_tokens.labels(kind).inc(usage.output_tokens)
        size = record.prompt_tokens
        if size is not None:
            self.prompt_size.labels(kind).observe(size)
        if record.anatomy is not None:
            for category, tokens in record.anatomy.categories.items():
                self.category_tokens.labels(category).inc(max(0, tokens))
            for server, entry in record.anatomy.mcp_servers.items():
                self.mcp_tokens.labels(self.server_label(server)).inc(max(0, int(entry.get("tokens", 0))))
        for by, name in (("transforms", TRANSFORM_SAVED_FIELD), ("mcp_switches", MCP_SAVED_FIELD)):
            saved = _number(record, name)
            if saved is not None and saved > 0:
                self.saved_tokens.labels(by).inc(saved)
        joules = _number(record, ENERGY_FIELD)
        if joules is not None and joules > 0:
            self.energy.inc(joules)

    def user_label(self, user: str) -> str:
        """The `user` label: a configured user or "unknown"; anything else (never expected) is "other"."""
        return user if user == UNKNOWN_USER or user in set(self._team_users()) else OTHER_LABEL

    def _observe_user(self, record: RequestRecord, kind: str, model: bool) -> None:
        user = self.user_label(record.user)
        self.user_requests.labels(user, kind).inc()
        usage = record.usage
        if not model or usage.prompt_tokens is None:
            return
        self.user_prompt_tokens.labels(user).inc(usage.prompt_tokens)
        self.user_cached_tokens.labels(user).inc(min(usage.cached_tokens or 0, usage.prompt_tokens))
        if usage.output_tokens:
            self.user_output_tokens.labels(user).inc(usage.output_tokens)

    def server_label(self, server: str) -> str:
        """The `server` label for an MCP server name: its own for configured and early names, else other."""
        name = server[:MCP_LABEL_CHARS]
        if name in self._mcp_configured or name in self._mcp_seen:
            return name
        if len(self._mcp_seen) < MCP_SERVER_LABELS_SEEN:
            self._mcp_seen.add(name)
            return name
        return OTHER_LABEL

    def observe_server(self, snapshot: ServerSnapshot) -> None:
        """Set the server gauges from D's latest ServerSnapshot."""
        for state in SERVER_STATES:
            self.server_state.labels(state).set(1 if snapshot.state == state else 0)
        self.last_poll.set(snapshot.ts)
        self.server_info.clear()
        if snapshot.model:
            self.server_info.labels(snapshot.model).set(1)
        self.slots.set(snapshot.n_slots)
        self.slots_busy.set(snapshot.busy_slots)
        self.ctx_per_slot.set(snapshot.n_ctx_slot)
        self.slot_tokens.clear()
        self.slot_fill.clear()
        for slot in snapshot.slots:
            self.slot_tokens.labels(str(slot.id)).set(slot.n_prompt_tokens)
            self.slot_fill.labels(str(slot.id)).set(slot.fill)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text exposition format."""
        return generate_latest(self.registry)
