"""The uncounted form of a part: its category, label and the exact text that will be tokenized."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from tui.core.anatomy.model import MCP_HELPERS_SERVER

# The agents' own tools over MCP resources, grouped as one "(helpers)" server: Claude Code's, and the three
# opencode (1.18) adds once a connected server has resources.
MCP_HELPER_TOOLS: frozenset[str] = frozenset(
    {
        "ListMcpResourcesTool",
        "ReadMcpResourceTool",
        "ReadMcpResourceDirTool",
        "list_mcp_resources",
        "list_mcp_resource_templates",
        "read_mcp_resource",
    }
)

# Harness-injected tags inside user messages (Claude Code, opencode): counted as "reminders".
REMINDER_TAGS: tuple[str, ...] = (
    "system-reminder",
    "local-command-stdout",
    "local-command-stderr",
    "local-command-caveat",
    "user-prompt-submit-hook",
)
_REMINDER_RE = re.compile(r"<(" + "|".join(re.escape(t) for t in REMINDER_TAGS) + r")>.*?</\1>\s*", re.DOTALL)
_SERVER_SANITIZE_RE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Piece:
    """One part before counting; `fixed_tokens` is set for parts estimated without a tokenizer (images)."""

    category: str
    label: str
    text: str
    section: str  # "system" | "tools" | "messages": order of the prompt for cache-break detection
    key: str  # stable identity within the section (block index, tool name, message index)
    server: str | None = None
    tool: str | None = None
    message_index: int | None = None
    fixed_tokens: int | None = None


def split_reminders(text: str) -> tuple[str, str]:
    """(reminder spans joined, remaining text) of a user text; cheap when no tag is present."""
    if "<" not in text:
        return "", text
    spans: list[str] = []

    def take(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return ""

    rest = _REMINDER_RE.sub(take, text)
    if not spans:
        return "", text
    return "".join(spans), rest.strip()


def sanitize_server(name: str) -> str:
    """MCP server names as clients put them into tool names (characters outside [A-Za-z0-9_-] become _)."""
    return _SERVER_SANITIZE_RE.sub("_", name)


def classify_tool(name: str, servers: tuple[str, ...]) -> tuple[str | None, str]:
    """(MCP server or None for built-ins, tool name within the server)."""
    if name.startswith("mcp__"):
        rest = name[5:]
        server, sep, tool = rest.partition("__")
        if sep and server:
            return server, tool
    if name in MCP_HELPER_TOOLS:
        return MCP_HELPERS_SERVER, name
    # Longest configured server first so "git_hub" wins over "git" for "git_hub_search".
    for server in sorted(servers, key=len, reverse=True):
        for prefix in (f"{server}_", f"{sanitize_server(server)}_"):
            if name.startswith(prefix) and len(name) > len(prefix):
                return server, name[len(prefix) :]
    return None, name


@dataclass
class Split:
    """A request body taken apart: its pieces in prompt order plus what sessions and kinds need."""

    dialect: str
    model: str = ""
    stream: bool = False
    pieces: list[Piece] = field(default_factory=list)
    message_count: int = 0
    tool_names: tuple[str, ...] = ()
    system_text: str = ""  # system prompt without the billing line, for session hashing
    first_user: str = ""  # first user message as text, for session hashing
    billing: dict[str, str] = field(default_factory=dict)
    json_output: bool = False  # asks for a JSON-schema answer (title generators)


def dumps(value: object) -> str:
    """Compact JSON text (what a schema costs when counted)."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")


def without(block: dict[str, Any], *keys: str) -> dict[str, Any]:
    """A copy of a JSON object without some keys (cache_control, base64 payloads)."""
    return {k: v for k, v in block.items() if k not in keys}


BILLING_PREFIX = "x-anthropic-billing-header:"


def parse_billing(text: str) -> dict[str, str]:
    """Key/value pairs of Claude Code's billing line, {} when the text is not one."""
    stripped = text.strip()
    if not stripped.startswith(BILLING_PREFIX):
        return {}
    out: dict[str, str] = {}
    for item in stripped[len(BILLING_PREFIX) :].split(";"):
        key, sep, value = item.strip().partition("=")
        if sep and key:
            out[key.strip()] = value.strip()
    return out
