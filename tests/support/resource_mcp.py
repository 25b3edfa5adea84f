"""A stdio MCP server with resources (one tool, two resources, one template), for agents that add their
resource helper tools only when a connected server has resources. Run: ``python resource_mcp.py``."""

from __future__ import annotations

import json
import sys
from typing import Any

TOOL = {
    "name": "lookup",
    "description": "Look up a note by its title.",
    "inputSchema": {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]},
}
RESOURCES = [
    {"uri": "notes://welcome", "name": "welcome", "mimeType": "text/plain", "description": "A greeting."},
    {"uri": "notes://todo", "name": "todo", "mimeType": "text/plain", "description": "Things to do."},
]
TEMPLATES = [{"uriTemplate": "notes://{title}", "name": "note", "mimeType": "text/plain"}]


def answer(method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The result of one request (None: method not found)."""
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}, "resources": {}},
            "serverInfo": {"name": "notes", "version": "1.0.0"},
        }
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": [TOOL]}
    if method == "tools/call":
        return {"content": [{"type": "text", "text": "no such note"}]}
    if method == "resources/list":
        return {"resources": RESOURCES}
    if method == "resources/templates/list":
        return {"resourceTemplates": TEMPLATES}
    if method == "resources/read":
        return {"contents": [{"uri": params.get("uri", ""), "mimeType": "text/plain", "text": "hello"}]}
    return None


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if "id" not in message:
            continue  # a notification
        result = answer(message.get("method", ""), message.get("params") or {})
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
        if result is None:
            reply["error"] = {"code": -32601, "message": f"method not found: {message.get('method')}"}
        else:
            reply["result"] = result
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
