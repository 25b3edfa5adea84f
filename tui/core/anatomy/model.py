"""Immutable results of splitting a request's context into categories."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The category names are a public contract (JSON outputs, journal, dashboard): do not rename.
CATEGORIES: tuple[str, ...] = (
    "system",
    "tools",
    "mcp_tools",
    "reminders",
    "history",
    "thinking",
    "tool_calls",
    "tool_results",
    "latest_user",
    "images",
    "template_overhead",
)

MCP_HELPERS_SERVER = "(helpers)"


@dataclass(frozen=True)
class Part:
    """One countable piece of the context: a system block, a tool schema, a message block."""

    category: str
    label: str
    tokens: int
    server: str | None = None
    tool: str | None = None
    message_index: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (None fields left out)."""
        out: dict[str, Any] = {"category": self.category, "label": self.label, "tokens": self.tokens}
        if self.server is not None:
            out["server"] = self.server
        if self.tool is not None:
            out["tool"] = self.tool
        if self.message_index is not None:
            out["message_index"] = self.message_index
        return out


@dataclass(frozen=True)
class ToolCost:
    """Tokens of one tool schema, with the MCP server it belongs to (None for built-ins)."""

    name: str
    server: str | None
    tokens: int

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {"name": self.name, "server": self.server, "tokens": self.tokens}


@dataclass(frozen=True)
class Anatomy:
    """Where one request's context tokens go."""

    dialect: str
    counter: str
    exact: bool
    categories: dict[str, int]
    mcp_servers: dict[str, dict[str, int]] = field(default_factory=dict)
    tools: tuple[ToolCost, ...] = ()
    tool_results_by_tool: dict[str, int] = field(default_factory=dict)
    image_count: int = 0
    parts: tuple[Part, ...] = ()
    model: str = ""
    stream: bool = False
    message_count: int = 0
    # Counted as the server's chat template renders the request: the parts are their rendered spans,
    # `as_sent` keeps the categories of the request as sent, `dropped` the parts the template left out.
    rendered: bool = False
    as_sent: dict[str, int] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()

    @property
    def total_tokens(self) -> int:
        """Sum over all categories (template_overhead included once known)."""
        return sum(self.categories.values())

    def to_json(self, *, with_parts: bool = False) -> dict[str, Any]:
        """The `inspect --json` contract, plus optional parts for the detail tree."""
        out: dict[str, Any] = {
            "dialect": self.dialect,
            "counter": self.counter,
            "exact": self.exact,
            "model": self.model,
            "stream": self.stream,
            "total_tokens": self.total_tokens,
            "categories": {name: self.categories.get(name, 0) for name in CATEGORIES},
            "mcp_servers": self.mcp_servers,
            "tools": [t.to_json() for t in self.tools],
            "tool_results_by_tool": self.tool_results_by_tool,
            "images": {"count": self.image_count, "tokens": self.categories.get("images", 0)},
            "message_count": self.message_count,
        }
        if self.rendered:
            out["rendered"] = True
            out["as_sent_categories"] = {name: self.as_sent.get(name, 0) for name in CATEGORIES}
            out["dropped_by_template"] = list(self.dropped)
        if with_parts:
            out["parts"] = [p.to_json() for p in self.parts]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Anatomy:
        """Rebuild from `to_json` output (as stored in the journal)."""
        return cls(
            dialect=data.get("dialect", ""),
            counter=data.get("counter", ""),
            exact=bool(data.get("exact", False)),
            categories={k: int(v) for k, v in data.get("categories", {}).items()},
            mcp_servers={k: dict(v) for k, v in data.get("mcp_servers", {}).items()},
            tools=tuple(
                ToolCost(t["name"], t.get("server"), int(t["tokens"])) for t in data.get("tools", [])
            ),
            tool_results_by_tool=dict(data.get("tool_results_by_tool", {})),
            image_count=int(data.get("images", {}).get("count", 0)),
            parts=tuple(
                Part(
                    p["category"],
                    p["label"],
                    int(p["tokens"]),
                    p.get("server"),
                    p.get("tool"),
                    p.get("message_index"),
                )
                for p in data.get("parts", [])
            ),
            model=data.get("model", ""),
            stream=bool(data.get("stream", False)),
            message_count=int(data.get("message_count", 0)),
            rendered=bool(data.get("rendered", False)),
            as_sent={k: int(v) for k, v in (data.get("as_sent_categories") or {}).items()},
            dropped=tuple(str(d) for d in data.get("dropped_by_template") or ()),
        )
