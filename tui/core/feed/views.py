"""Pure view models computed from core state: budget segments, MCP server rows, sparkline series."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tui.core.anatomy.model import MCP_HELPERS_SERVER
from tui.core.records import RequestRecord

# Display order and labels of the budget bar; "mcp:<server>" segments replace the mcp_tools total.
CATEGORY_LABELS: dict[str, str] = {
    "system": "system",
    "tools": "tools",
    "mcp_tools": "MCP",
    "reminders": "reminders",
    "history": "history",
    "thinking": "thinking",
    "tool_calls": "tool calls",
    "tool_results": "tool results",
    "latest_user": "latest user",
    "images": "images",
    "template_overhead": "overhead",
    "free": "free",
}
WARN_FRACTION = 0.80
DANGER_FRACTION = 0.95


@dataclass(frozen=True)
class BudgetSegment:
    """One coloured piece of the budget bar."""

    key: str  # category name, "mcp:<server>" or "free"
    label: str
    tokens: int
    style_key: str  # category name used for the colour ("mcp_tools" for every MCP server)


@dataclass(frozen=True)
class Budget:
    """The selected request's context against the slot window."""

    record_id: int
    segments: tuple[BudgetSegment, ...]
    used: int
    window: int
    exact: bool
    counter: str

    @property
    def fraction(self) -> float:
        """Share of the window in use (0 when the window is unknown)."""
        return self.used / self.window if self.window > 0 else 0.0

    @property
    def level(self) -> str:
        """ "ok", "warning" or "danger" by how close the request is to the window."""
        if self.fraction >= DANGER_FRACTION:
            return "danger"
        if self.fraction >= WARN_FRACTION:
            return "warning"
        return "ok"


def mcp_server_of(tool: str | None) -> str | None:
    """The MCP server named in a Claude Code tool name (`mcp__<server>__<tool>`)."""
    if tool and tool.startswith("mcp__"):
        rest = tool[5:]
        server, sep, _ = rest.partition("__")
        return server if sep else None
    return None


def budget_of(record: RequestRecord, window: int) -> Budget | None:
    """Budget segments of one request (None when it has no anatomy)."""
    anatomy = record.anatomy
    if anatomy is None:
        return None
    segments: list[BudgetSegment] = []
    for name in CATEGORY_LABELS:
        if name == "free":
            continue
        if name == "mcp_tools":
            per_server = _mcp_tokens(record)
            for server, tokens in per_server.items():
                segments.append(BudgetSegment(f"mcp:{server}", f"MCP {server}", tokens, "mcp_tools"))
            rest = anatomy.categories.get(name, 0) - sum(per_server.values())
            if rest > 0:
                segments.append(BudgetSegment(name, "MCP", rest, name))
            continue
        tokens = anatomy.categories.get(name, 0)
        if tokens > 0:
            segments.append(BudgetSegment(name, CATEGORY_LABELS[name], tokens, name))
    used = record.prompt_tokens or anatomy.total_tokens
    if window > used:
        segments.append(BudgetSegment("free", "free", window - used, "free"))
    return Budget(record.id, tuple(segments), used, window, anatomy.exact, anatomy.counter)


def _mcp_tokens(record: RequestRecord) -> dict[str, int]:
    anatomy = record.anatomy
    out: dict[str, int] = {}
    if anatomy is None:
        return out
    if anatomy.tools:
        for tool in anatomy.tools:
            server = tool.server or mcp_server_of(tool.name)
            if server:
                out[server] = out.get(server, 0) + tool.tokens
    else:
        for server, info in anatomy.mcp_servers.items():
            out[server] = int(info.get("tokens", 0))
    return out


@dataclass(frozen=True)
class McpServerRow:
    """One MCP server as the dashboard lists it."""

    name: str
    tools: int
    tokens: int
    calls: int
    state: str  # "on" (tools sent) | "off" (configured, no tools in the request) | "helpers"


def mcp_calls(record: RequestRecord) -> dict[str, int]:
    """Tool calls per MCP server in the request's conversation (needs the anatomy parts)."""
    calls: dict[str, int] = {}
    if record.anatomy is not None:
        for part in record.anatomy.parts:
            if part.category == "tool_calls":
                server = part.server or mcp_server_of(part.tool)
                if server:
                    calls[server] = calls.get(server, 0) + 1
    return calls


class SessionCalls:
    """Most MCP calls seen per server in each agent session (bounded to the latest sessions)."""

    def __init__(self, max_sessions: int = 64) -> None:
        self._by_session: dict[str, dict[str, int]] = {}
        self._max = max_sessions

    def add(self, records: Iterable[RequestRecord]) -> None:
        """Fold records that carry parts."""
        for record in records:
            calls = mcp_calls(record)
            if not calls:
                continue
            seen = self._by_session.setdefault(record.session_id, {})
            for server, count in calls.items():
                seen[server] = max(seen.get(server, 0), count)
            while len(self._by_session) > self._max:
                self._by_session.pop(next(iter(self._by_session)))

    def of(self, session_id: str) -> dict[str, int]:
        """Calls per server in one session."""
        return dict(self._by_session.get(session_id, {}))


def mcp_rows(
    record: RequestRecord | None, configured: Sequence[str] = (), session_calls: dict[str, int] | None = None
) -> tuple[McpServerRow, ...]:
    """MCP servers of the request: tool count, schema tokens, calls seen in its session, on/off."""
    tools: dict[str, int] = {}
    tokens: dict[str, int] = {}
    anatomy = record.anatomy if record else None
    calls = mcp_calls(record) if record else {}
    for name, count in (session_calls or {}).items():
        calls[name] = max(calls.get(name, 0), count)
    if anatomy is not None:
        for tool in anatomy.tools:
            server = tool.server or mcp_server_of(tool.name)
            if server:
                tools[server] = tools.get(server, 0) + 1
                tokens[server] = tokens.get(server, 0) + tool.tokens
        if not anatomy.tools:
            for server, info in anatomy.mcp_servers.items():
                tools[server] = int(info.get("tools", 0))
                tokens[server] = int(info.get("tokens", 0))
    names = list(dict.fromkeys([*tools, *configured]))
    rows = [
        McpServerRow(
            name,
            tools.get(name, 0),
            tokens.get(name, 0),
            calls.get(name, 0),
            "helpers" if name == MCP_HELPERS_SERVER else ("on" if name in tools else "off"),
        )
        for name in names
    ]
    return tuple(rows)


@dataclass(frozen=True)
class SparkSeries:
    """Values over the last N requests, oldest first (None where unknown is dropped)."""

    prompt_tps: tuple[float, ...]
    gen_tps: tuple[float, ...]
    prompt_tokens: tuple[float, ...]
    reuse_pct: tuple[float, ...]
    # Speculative decoding: % of drafted tokens accepted per request (empty without a draft model).
    draft_pct: tuple[float, ...] = ()


class RequestHistory:
    """The last N main requests for the sparklines (bounded)."""

    def __init__(self, size: int = 60) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=max(2, size))

    def add(self, records: Iterable[RequestRecord]) -> None:
        """Append records that carry usage numbers; a record seen before replaces its older copy."""
        for record in records:
            if record.prompt_tokens is None or record.kind == "count_tokens":
                continue
            for index, old in enumerate(self._records):
                if old.id == record.id:
                    self._records[index] = record
                    break
            else:
                self._records.append(record)

    def series(self) -> SparkSeries:
        """The four series shown under the budget."""
        recs = list(self._records)
        return SparkSeries(
            prompt_tps=tuple(
                r.usage.prompt_per_second for r in recs if r.usage.prompt_per_second is not None
            ),
            gen_tps=tuple(r.usage.gen_per_second for r in recs if r.usage.gen_per_second is not None),
            prompt_tokens=tuple(float(r.prompt_tokens or 0) for r in recs),
            reuse_pct=tuple(100.0 * f for r in recs if (f := r.reused_fraction) is not None),
            draft_pct=tuple(100.0 * a for r in recs if (a := r.usage.draft_acceptance) is not None),
        )
