"""What the control API reports about this proxy run: latest anatomy, called tools, savings so far."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from tui.core.anatomy.model import MCP_HELPERS_SERVER
from tui.core.records import RequestRecord

MAX_SESSIONS = 32


@dataclass
class SessionSavings:
    """Token savings summed over the journaled requests of this proxy run."""

    requests: int = 0
    by_transform: dict[str, int] = field(default_factory=dict)
    transform_tokens: int = 0
    mcp_tokens: int = 0
    compaction_tokens: int = 0


class RunTracker:
    """Fed every journaled record (on the proxy's loop); answers the state endpoint's questions."""

    def __init__(self) -> None:
        self.latest: RequestRecord | None = None
        self._latest_by_user: dict[str, RequestRecord] = {}
        self.savings = SessionSavings()
        self._called: OrderedDict[str, set[str]] = OrderedDict()

    def observe(self, record: RequestRecord) -> None:
        """Remember the record's anatomy, the tools its conversation called and what was saved."""
        self.savings.requests += 1
        for saving in record.transforms:
            self.savings.by_transform[saving.name] = (
                self.savings.by_transform.get(saving.name, 0) + saving.saved
            )
        self.savings.transform_tokens += record.transform_saved_tokens or 0
        self.savings.mcp_tokens += record.mcp_saved_tokens or 0
        self.savings.compaction_tokens += record.compaction_saved_tokens or 0
        anatomy = record.anatomy
        if anatomy is None or record.kind not in ("main", "subagent"):
            return
        called = self._called.setdefault(record.session_id, set())
        self._called.move_to_end(record.session_id)
        while len(self._called) > MAX_SESSIONS:
            self._called.popitem(last=False)
        called.update(anatomy.tool_results_by_tool)
        called.update(
            p.tool for p in anatomy.parts if p.tool and p.category in ("tool_calls", "tool_results")
        )
        if anatomy.tools or self.latest is None or self.latest.session_id != record.session_id:
            self.latest = record
        own = self._latest_by_user.get(record.user)
        if anatomy.tools or own is None or own.session_id != record.session_id:
            self._latest_by_user[record.user] = record  # users are the configured ones: bounded

    def latest_of(self, user: str = "") -> RequestRecord | None:
        """The latest main request of one user ("" : of anyone, when no single-user request was seen)."""
        own = self._latest_by_user.get(user)
        return own if own is not None or user else self.latest

    def servers(self, user: str = "") -> dict[str, dict[str, int]]:
        """MCP servers of the user's latest request with their tool counts and tokens."""
        latest = self.latest_of(user)
        anatomy = latest.anatomy if latest is not None else None
        if anatomy is None:
            return {}
        return {k: v for k, v in anatomy.mcp_servers.items() if k != MCP_HELPERS_SERVER}

    def never_called(self, user: str = "") -> list[dict[str, object]]:
        """MCP servers of the user's latest request whose tools its session never called, costliest first."""
        record = self.latest_of(user)
        if record is None or record.anatomy is None:
            return []
        called = self._called.get(record.session_id, set())
        by_server: dict[str, list[tuple[str, int]]] = {}
        for tool in record.anatomy.tools:
            if tool.server and tool.server != MCP_HELPERS_SERVER:
                by_server.setdefault(tool.server, []).append((tool.name, tool.tokens))
        out = [
            {"server": server, "tools": [n for n, _ in tools], "tokens": sum(t for _, t in tools)}
            for server, tools in by_server.items()
            if not any(name in called for name, _ in tools)
        ]
        out.sort(key=lambda c: (-int(str(c["tokens"])), str(c["server"])))
        return out
