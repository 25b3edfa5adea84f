"""Aggregate journal rows into one Summary: tokens by category, cache reuse, percentiles, savings, cost."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui.core.anatomy.model import CATEGORIES
from tui.core.journal.outcome import CLIENT_GAVE_UP
from tui.core.records import RequestRecord
from tui.core.report.prices import DEFAULT_PRICES, CloudCost, PriceEntry, cloud_cost
from tui.core.report.stats import SIZE_LABELS, percentile, size_bucket

# Optional RequestRecord fields read when the journal records them (getattr: absent means "not recorded").
TRANSFORM_SAVED_FIELD = "transform_saved_tokens"
MCP_SAVED_FIELD = "mcp_saved_tokens"
ENERGY_FIELD = "energy_j"

MODEL_KINDS = frozenset({"main", "title", "compact", "subagent"})
TREND_POINTS = 24


def is_model_request(record: RequestRecord) -> bool:
    """Whether a row is a prompt the model processed (not count_tokens, health checks or GETs)."""
    if record.kind == "count_tokens" or record.method != "POST":
        return False
    return record.kind in MODEL_KINDS and bool(record.dialect or record.usage.prompt_tokens is not None)


def failed(record: RequestRecord) -> bool:
    """Whether a request did not complete (an error, an error status, or no status at all)."""
    return bool(record.error) or record.status >= 400 or record.status == 0


def cut_off(record: RequestRecord) -> bool:
    """Whether a request was cut off before its answer ended (client gave up, proxy stopped)."""
    return record.state == "interrupted" or (record.error or "").startswith(CLIENT_GAVE_UP)


def day_of(ts: float) -> str:
    """The local calendar day of an epoch timestamp, as YYYY-MM-DD."""
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def _optional_number(record: RequestRecord, name: str) -> float | None:
    value = getattr(record, name, None)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class LatencyBucket:
    """Latency percentiles (ms) of the requests whose prompt falls in one size bucket."""

    label: str
    requests: int
    ttfb_p50: float | None
    ttfb_p95: float | None
    total_p50: float | None
    total_p95: float | None

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Saving:
    """Tokens saved by one mechanism; `recorded` counts the rows that carried the field."""

    tokens: int = 0
    recorded: int = 0

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (a note when no row recorded it)."""
        out: dict[str, Any] = {"tokens": self.tokens, "recorded_requests": self.recorded}
        if not self.recorded:
            out["note"] = "not recorded"
        return out


@dataclass(frozen=True)
class Summary:
    """Aggregates over a set of journal rows (a session, a day, both, or everything)."""

    session: str | None
    day: str | None
    requests: int
    other_requests: int
    errors: int
    first_ts: float | None
    last_ts: float | None
    usage_requests: int
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    anatomy_requests: int
    categories: dict[str, int]
    mcp_servers: dict[str, int]
    prompt_p50: float | None
    prompt_p95: float | None
    prompt_p99: float | None
    latency: tuple[LatencyBucket, ...]
    transform_saved: Saving = field(default_factory=Saving)
    mcp_saved: Saving = field(default_factory=Saving)
    energy_requests: int = 0
    energy_j: float = 0.0
    energy_tokens: int = 0
    costs: tuple[CloudCost, ...] = ()
    # Requests per model name the client asked for (what a cloud API would have been asked for).
    models: dict[str, int] = field(default_factory=dict)
    # Failed model requests split: the server refused them (4xx/5xx), or they were cut off (the client
    # gave up, or the proxy stopped); their prompt tokens are not in the token sums (no completed work).
    rejected: int = 0
    cancelled: int = 0
    in_flight: int = 0  # provisional rows of requests still being answered (not counted anywhere else)
    # Prompt lengths in request order, downsampled (max per step) to at most TREND_POINTS values.
    prompt_trend: tuple[int, ...] = ()
    user: str | None = None  # team mode: the user these rows belong to (`report --by user`)
    # Speculative decoding: requests that reported draft counts, tokens drafted and accepted.
    draft_requests: int = 0
    draft_tokens: int = 0
    draft_accepted: int = 0
    # Per-request draft acceptance (%) in request order, downsampled like prompt_trend.
    draft_trend: tuple[int, ...] = ()

    @property
    def draft_acceptance(self) -> float | None:
        """Accepted / drafted tokens over the rows with speculative decoding (None: no drafts)."""
        return self.draft_accepted / self.draft_tokens if self.draft_tokens else None

    @property
    def new_tokens(self) -> int:
        """Prompt tokens the server had to evaluate (not taken from its prefix cache)."""
        return max(0, self.prompt_tokens - self.cached_tokens)

    @property
    def reuse_rate(self) -> float | None:
        """cached / prompt tokens (None before any usage was reported)."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens > 0 else None

    @property
    def effective_per_request(self) -> float | None:
        """New (non-cached) prompt tokens per request with reported usage."""
        return self.new_tokens / self.usage_requests if self.usage_requests else None

    @property
    def tokens_per_joule(self) -> float | None:
        """(new prompt + output) tokens per joule over the rows that recorded energy."""
        return self.energy_tokens / self.energy_j if self.energy_requests and self.energy_j > 0 else None

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (the `report --format json` contract for one summary)."""
        energy: dict[str, Any] = {
            "recorded_requests": self.energy_requests,
            "joules": round(self.energy_j, 3) if self.energy_requests else None,
            "tokens_per_joule": self.tokens_per_joule,
        }
        if not self.energy_requests:
            energy["note"] = "not recorded"
        return {
            "session": self.session,
            "user": self.user,
            "day": self.day,
            "requests": self.requests,
            "other_requests": self.other_requests,
            "errors": self.errors,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "usage_requests": self.usage_requests,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "new_tokens": self.new_tokens,
            "output_tokens": self.output_tokens,
            "reuse_rate": self.reuse_rate,
            "effective_tokens_per_request": self.effective_per_request,
            "prompt_length": {"p50": self.prompt_p50, "p95": self.prompt_p95, "p99": self.prompt_p99},
            "anatomy_requests": self.anatomy_requests,
            "categories": self.categories,
            "mcp_servers": self.mcp_servers,
            "latency_ms": [b.to_json() for b in self.latency],
            "saved_by_transforms": self.transform_saved.to_json(),
            "saved_by_mcp_switches": self.mcp_saved.to_json(),
            "energy": energy,
            "cloud_cost": [c.to_json() for c in self.costs],
            "prompt_trend": list(self.prompt_trend),
            "models": self.models,
            "rejected": self.rejected,
            "cancelled": self.cancelled,
            "in_flight": self.in_flight,
            "speculative": {
                "requests": self.draft_requests,
                "draft_tokens": self.draft_tokens,
                "accepted_tokens": self.draft_accepted,
                "acceptance": self.draft_acceptance,
                "trend_pct": list(self.draft_trend),
            },
        }


def summarize(
    records: Iterable[RequestRecord],
    *,
    session: str | None = None,
    day: str | None = None,
    prices: Sequence[PriceEntry] = DEFAULT_PRICES,
    user: str | None = None,
) -> Summary:
    """Aggregate the given rows (no filtering: `session`/`day`/`user` only label the result)."""
    every = list(records)
    rows = [r for r in every if not r.in_flight]
    model_rows = [r for r in rows if is_model_request(r)]
    categories = dict.fromkeys(CATEGORIES, 0)
    mcp: dict[str, int] = {}
    prompt = cached = output = usage_requests = anatomy_requests = 0
    sizes: list[float] = []
    by_bucket: dict[str, list[RequestRecord]] = {label: [] for label in SIZE_LABELS}
    transform = [0.0, 0]
    mcp_saved = [0.0, 0]
    energy_requests, energy_j, energy_tokens = 0, 0.0, 0
    for r in model_rows:
        if r.anatomy is not None:
            anatomy_requests += 1
            for name, tokens in r.anatomy.categories.items():
                categories[name] = categories.get(name, 0) + tokens
            for server, entry in r.anatomy.mcp_servers.items():
                mcp[server] = mcp.get(server, 0) + int(entry.get("tokens", 0))
        new = 0
        if r.usage.prompt_tokens is not None and not failed(r):
            usage_requests += 1
            prompt += r.usage.prompt_tokens
            hit = min(r.usage.cached_tokens or 0, r.usage.prompt_tokens)
            cached += hit
            new = r.usage.prompt_tokens - hit
        out = r.usage.output_tokens or 0
        output += out
        size = r.prompt_tokens
        if size is not None:
            sizes.append(size)
            by_bucket[size_bucket(size)].append(r)
        for name, acc in ((TRANSFORM_SAVED_FIELD, transform), (MCP_SAVED_FIELD, mcp_saved)):
            value = _optional_number(r, name)
            if value is not None:
                acc[0] += value
                acc[1] += 1
        joules = _optional_number(r, ENERGY_FIELD)
        if joules is not None:
            energy_requests += 1
            energy_j += joules
            energy_tokens += new + out
    new_total = max(0, prompt - cached)
    return Summary(
        session=session,
        user=user,
        day=day,
        requests=len(model_rows),
        other_requests=len(rows) - len(model_rows),
        errors=sum(1 for r in model_rows if failed(r)),
        rejected=sum(1 for r in model_rows if r.status >= 400),
        cancelled=sum(1 for r in model_rows if cut_off(r)),
        in_flight=len(every) - len(rows),
        first_ts=min((r.ts for r in rows), default=None),
        last_ts=max((r.ts for r in rows), default=None),
        usage_requests=usage_requests,
        prompt_tokens=prompt,
        cached_tokens=cached,
        output_tokens=output,
        anatomy_requests=anatomy_requests,
        categories=categories,
        mcp_servers=dict(sorted(mcp.items(), key=lambda kv: -kv[1])),
        prompt_p50=percentile(sizes, 50),
        prompt_p95=percentile(sizes, 95),
        prompt_p99=percentile(sizes, 99),
        latency=tuple(_latency(label, by_bucket[label]) for label in SIZE_LABELS),
        transform_saved=Saving(int(transform[0]), int(transform[1])),
        mcp_saved=Saving(int(mcp_saved[0]), int(mcp_saved[1])),
        energy_requests=energy_requests,
        energy_j=energy_j,
        energy_tokens=energy_tokens,
        costs=tuple(cloud_cost(p, new_total, cached, output) for p in prices),
        prompt_trend=downsample(sizes),
        models=_model_counts(model_rows),
        **_draft_totals(model_rows),
    )


def _draft_totals(rows: Sequence[RequestRecord]) -> dict[str, Any]:
    drafted = [r.usage for r in rows if r.usage.draft_tokens and r.usage.draft_accepted is not None]
    return {
        "draft_requests": len(drafted),
        "draft_tokens": sum(u.draft_tokens or 0 for u in drafted),
        "draft_accepted": sum(u.draft_accepted or 0 for u in drafted),
        "draft_trend": downsample([100.0 * (u.draft_acceptance or 0.0) for u in drafted]),
    }


def _model_counts(rows: Sequence[RequestRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        if r.model:
            counts[r.model] = counts.get(r.model, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def downsample(values: Sequence[float], points: int = TREND_POINTS) -> tuple[int, ...]:
    """At most `points` values: the maximum of each consecutive run (keeps peaks visible)."""
    if len(values) <= points:
        return tuple(round(v) for v in values)
    step = len(values) / points
    return tuple(
        round(max(values[int(i * step): max(int((i + 1) * step), int(i * step) + 1)])) for i in range(points)
    )


def _latency(label: str, rows: list[RequestRecord]) -> LatencyBucket:
    ttfb = [r.ttfb_ms for r in rows if r.ttfb_ms is not None and not r.error]
    total = [r.total_ms for r in rows if r.total_ms is not None and not r.error]
    return LatencyBucket(
        label=label,
        requests=len(rows),
        ttfb_p50=percentile(ttfb, 50),
        ttfb_p95=percentile(ttfb, 95),
        total_p50=percentile(total, 50),
        total_p95=percentile(total, 95),
    )


def summary_for(
    records: Iterable[RequestRecord],
    session: str | None = None,
    day: str | None = None,
    prices: Sequence[PriceEntry] = DEFAULT_PRICES,
) -> Summary:
    """Summary of the rows of one session and/or one local day (None: any)."""
    chosen = [
        r for r in records
        if (session is None or r.session_id == session) and (day is None or day_of(r.ts) == day)
    ]
    return summarize(chosen, session=session, day=day, prices=prices)
