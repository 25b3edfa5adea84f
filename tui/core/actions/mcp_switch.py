"""MCP switches: a persisted set of servers switched off, and the request filter that applies it."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.core.actions.counting import count_texts
from tui.core.actions.state_files import data_dir, file_signature, read_json, write_json_atomic
from tui.core.anatomy.model import MCP_HELPERS_SERVER, Anatomy
from tui.core.anatomy.pieces import MCP_HELPER_TOOLS, classify_tool, dumps, sanitize_server
from tui.core.tokens import TokenCounter

STATE_FILE = "mcp_switches.json"


def default_state_path() -> Path:
    """The switch state file in the user data dir."""
    return data_dir() / STATE_FILE


class McpSwitchStore:
    """Servers switched off, persisted as JSON; `off()` re-reads the file only when its mtime changed."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_state_path()
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._off: frozenset[str] = frozenset()
        self._reload()

    def _reload(self) -> None:
        signature = file_signature(self.path)
        if signature == self._signature and signature is not None:
            return
        data = read_json(self.path) if signature is not None else None
        names = data.get("off", []) if isinstance(data, dict) else []
        self._off = frozenset(str(n) for n in names if isinstance(n, str) and n)
        self._signature = signature

    def off(self) -> frozenset[str]:
        """Server names switched off right now (cheap: one stat per call)."""
        with self._lock:
            self._reload()
            return self._off

    def set_enabled(self, server: str, enabled: bool) -> frozenset[str]:
        """Switch one server on or off and persist; returns the new off set."""
        if not server:
            raise ValueError("server name must not be empty")
        with self._lock:
            self._reload()
            off = set(self._off)
            if enabled:
                off.discard(server)
            else:
                off.add(server)
            write_json_atomic(self.path, {"version": 1, "off": sorted(off), "updated": time.time()})
            self._signature = None
            self._reload()
            return self._off


def _matches(server: str, off: Collection[str]) -> bool:
    return server in off or any(sanitize_server(name) == server for name in off)


def tool_name(tool: Any) -> str:
    """A tool's name in either dialect (Anthropic `name`, OpenAI `function.name`)."""
    if not isinstance(tool, dict):
        return ""
    function = tool.get("function")
    if isinstance(function, dict) and "name" in function:
        return str(function.get("name", ""))
    return str(tool.get("name", ""))


def servers_in_request(body: dict[str, Any], known_servers: Sequence[str]) -> list[str]:
    """MCP servers with at least one tool in the request, in order of first appearance."""
    seen: list[str] = []
    for tool in body.get("tools") or []:
        server, _ = classify_tool(tool_name(tool), tuple(known_servers))
        if server is not None and server != MCP_HELPERS_SERVER and server not in seen:
            seen.append(server)
    return seen


@dataclass(frozen=True)
class ToolFilterResult:
    """A request body with switched-off tools removed, and what was removed."""

    body: dict[str, Any]
    removed: tuple[str, ...]
    removed_tokens: int
    counter: str
    exact: bool

    @property
    def changed(self) -> bool:
        """Whether anything was removed."""
        return bool(self.removed)


def filter_tools(
    body: dict[str, Any],
    off: Collection[str],
    known_servers: Sequence[str] = (),
    counter: TokenCounter | None = None,
) -> ToolFilterResult:
    """Remove tool schemas of switched-off servers (and the MCP helper tools when all servers are off)."""
    tools = body.get("tools")
    if not off or not isinstance(tools, list):
        return ToolFilterResult(body, (), 0, "", False)
    servers = tuple(known_servers)
    present = servers_in_request(body, servers)
    all_off = bool(present) and all(_matches(s, off) for s in present)
    kept: list[Any] = []
    removed: list[Any] = []
    for tool in tools:
        name = tool_name(tool)
        server, _ = classify_tool(name, servers)
        if server == MCP_HELPERS_SERVER:
            drop = all_off and name in MCP_HELPER_TOOLS
        else:
            drop = server is not None and _matches(server, off)
        (removed if drop else kept).append(tool)
    if not removed:
        return ToolFilterResult(body, (), 0, "", False)
    new_body = dict(body)
    names = tuple(tool_name(t) for t in removed)
    if kept:
        new_body["tools"] = kept
    else:
        new_body.pop("tools", None)
    _fix_tool_choice(new_body, set(names), bool(kept))
    counts = count_texts([dumps(t) for t in removed], counter)
    return ToolFilterResult(new_body, names, counts.total, counts.counter, counts.exact)


def _fix_tool_choice(body: dict[str, Any], removed: set[str], tools_left: bool) -> None:
    """Keep the request valid when tool_choice names a removed tool or no tool is left."""
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not tools_left:
        body.pop("tool_choice", None)
        return
    if isinstance(choice, dict):
        named = choice.get("name") or (choice.get("function") or {}).get("name")
        if named in removed:
            body["tool_choice"] = {"type": "auto"} if "name" in choice else "auto"


def called_tool_names(body: dict[str, Any]) -> set[str]:
    """Tool names the conversation has called (Anthropic tool_use blocks, OpenAI tool_calls)."""
    names: set[str] = set()
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict):
                names.add(tool_name(call))
        content = message.get("content")
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    names.add(str(block.get("name", "")))
    names.discard("")
    return names


@dataclass(frozen=True)
class McpCandidate:
    """An MCP server whose tools were offered but never called in the session."""

    server: str
    tools: tuple[str, ...]
    tokens: int


def unused_servers(
    body: dict[str, Any],
    known_servers: Sequence[str] = (),
    called: Iterable[str] = (),
    anatomy: Anatomy | None = None,
) -> list[McpCandidate]:
    """Servers to switch off first: none of their tools were called (in this body or `called`)."""
    used = called_tool_names(body) | set(called)
    servers = tuple(known_servers)
    by_server: dict[str, list[str]] = {}
    for tool in body.get("tools") or []:
        name = tool_name(tool)
        server, _ = classify_tool(name, servers)
        if server is not None and server != MCP_HELPERS_SERVER:
            by_server.setdefault(server, []).append(name)
    out: list[McpCandidate] = []
    for server, names in by_server.items():
        if any(n in used for n in names):
            continue
        tokens = 0
        if anatomy is not None:
            tokens = sum(t.tokens for t in anatomy.tools if t.server == server)
        out.append(McpCandidate(server, tuple(names), tokens))
    out.sort(key=lambda c: (-c.tokens, c.server))
    return out


@dataclass(frozen=True)
class SwitchCost:
    """What switching one server costs: tokens per request it adds or saves, tokens re-processed once.

    Counts are in server tokens when the request's server prompt count was known (`exact_scale`), else in
    the anatomy's counter. `schema_tokens` is None when switching on a server whose size was never seen.
    """

    server: str
    switching_on: bool
    schema_tokens: int | None
    reprocess_tokens: int
    total_tokens: int
    counter: str = ""

    def text(self) -> str:
        """The one sentence the dialog, the toast and the CLI all show."""
        size = f"~{self.schema_tokens:,}" if self.schema_tokens is not None else "its (unseen)"
        verb = "adds" if self.switching_on else "saves"
        return (
            f"{verb} {size} tokens per request; the server re-processes ~{self.reprocess_tokens:,} "
            f"of {self.total_tokens:,} prompt tokens once"
        )

    def to_json(self) -> dict[str, Any]:
        """The control API's `cost` object."""
        return {
            "server": self.server,
            "switching_on": self.switching_on,
            "schema_tokens": self.schema_tokens,
            "reprocess_tokens": self.reprocess_tokens,
            "total_tokens": self.total_tokens,
            "counter": self.counter,
            "text": self.text(),
        }


def switch_cost(
    anatomy: Anatomy,
    server: str,
    *,
    switching_on: bool = False,
    known_schema_tokens: int | None = None,
    server_prompt_tokens: int | None = None,
) -> SwitchCost:
    """The cost of switching `server` off (or on) on the request after the one `anatomy` describes.

    The server re-processes everything after the first changed tool: switching off drops the server's
    schemas, so that is the parts after its first tool minus the removed ones; switching on inserts them
    (the agent lists them after the other MCP tools), so it is the parts from there plus the schemas.
    The chat template's own tokens wrap each part, so each part carries an even share of them. With the
    server's own prompt count the figures are scaled to server tokens (what the server reports
    re-processing).
    """
    target = {server, sanitize_server(server)}

    def is_target(part: Any) -> bool:
        return bool(part.category == "mcp_tools" and part.server in target)

    # Rendered anatomies hold the template's text as parts where it sits: nothing to spread.
    positional = anatomy.rendered
    body = [p for p in anatomy.parts if positional or p.category != "template_overhead"]
    overhead = sum(p.tokens for p in anatomy.parts if p.category == "template_overhead")
    overhead = 0 if positional else overhead or anatomy.categories.get("template_overhead", 0)
    per_part = overhead / len(body) if body else 0.0
    targets = [p for p in body if is_target(p)]
    schema: float | None = sum(p.tokens for p in targets) + per_part * len(targets)
    if not schema and anatomy.mcp_servers:
        schema = float(anatomy.mcp_servers.get(server, {}).get("tokens", 0))
    schema = schema or known_schema_tokens
    first = next((i for i, p in enumerate(body) if is_target(p)), None)
    for category in ("mcp_tools", "tools"):  # not in this request: agents list a server's tools last
        if first is None:
            last = max((i for i, p in enumerate(body) if p.category == category), default=None)
            first = None if last is None else last + 1
    total = anatomy.total_tokens
    reprocess: float
    if not switching_on and not targets and not schema:
        reprocess = 0.0  # none of its tools in the request: switching it off changes nothing
    elif first is None:
        reprocess = float(total)  # no per-part positions: at most the whole prompt
    else:
        after = [p for p in body[first:] if not is_target(p)]
        reprocess = sum(p.tokens for p in after) + per_part * len(after)
    if switching_on:
        reprocess += schema or 0
    counter = anatomy.counter
    if server_prompt_tokens and total:
        scale = server_prompt_tokens / total
        reprocess *= scale
        schema = schema * scale if schema is not None else None
        total, counter = server_prompt_tokens, "server"
    return SwitchCost(
        server, switching_on, round(schema) if schema is not None else None, round(reprocess), total, counter
    )
