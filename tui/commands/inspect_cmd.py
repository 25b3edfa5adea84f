"""`ctxbudget inspect FILE`: split one saved request body into context categories."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tui.core.config import COUNTER_MODES, Settings
from tui.core.terminal_text import printable_lines

if TYPE_CHECKING:
    from tui.core.anatomy.model import Anatomy
    from tui.core.tokens import TokenCounter

TOP_TOOLS = 10


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `inspect` subcommand."""
    parser = subparsers.add_parser(
        "inspect",
        help="show where one request's context tokens go",
        description=(
            "Split a saved request body (Anthropic /v1/messages or OpenAI /v1/chat/completions) into "
            "context categories. FILE holds the body, or an object with a `body` field and optionally "
            "`path`; '-' reads stdin."
        ),
    )
    parser.add_argument("file", metavar="FILE", help="request body JSON file ('-' for stdin)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument(
        "--mcp-server",
        action="append",
        default=[],
        metavar="NAME",
        help="MCP server name for tools named <server>_<tool> (repeatable; adds to anatomy.mcp_servers)",
    )
    parser.add_argument(
        "--counter", choices=COUNTER_MODES, default=None, help="token counter (default: anatomy.counter)"
    )
    parser.add_argument("--server", metavar="URL", default=None, help="llama-server URL for /tokenize")
    parser.add_argument("--parts", action="store_true", help="also list every part (with --json: 'parts')")
    parser.add_argument(
        "--transforms",
        action="store_true",
        help="preview the enabled transforms on this request: a diff and tokens before/after each",
    )
    parser.set_defaults(func=run_inspect)


class InspectError(Exception):
    """A file that cannot be inspected; the message says why."""


def load_request(file: str) -> tuple[dict[str, Any], str]:
    """(request body, dialect or "auto") from a body file or a {"body": ..., "path": ...} wrapper."""
    from tui.core.anatomy.body import BodyError, decode_bytes, parse_json_object, route

    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise InspectError(f"cannot read {file}: {exc.strerror or exc}") from exc
    try:
        body = parse_json_object(decode_bytes(data, {}))
    except BodyError as exc:
        raise InspectError(f"{file}: {exc}") from exc
    dialect = "auto"
    if "body" in body and "messages" not in body:
        path = body.get("path")
        inner = body["body"]
        if isinstance(inner, str):
            try:
                inner = parse_json_object(inner.encode("utf-8"))
            except BodyError as exc:
                raise InspectError(f"{file}: body field: {exc}") from exc
        if not isinstance(inner, dict):
            raise InspectError(f"{file}: the body field must hold a JSON object")
        body = inner
        if isinstance(path, str) and path:
            target = route("POST", path)
            if target is None:
                raise InspectError(f"{file}: path {path} is not a model request")
            dialect = target.dialect
    if not isinstance(body.get("messages"), list):
        raise InspectError(f"{file}: not a chat request (no messages list)")
    return body, dialect


def run_inspect(args: argparse.Namespace, settings: Settings) -> int:
    """Handler: print the anatomy table or JSON; 1 on unreadable input or counter failure."""
    from tui.core.anatomy.analyze import anatomy_of, split_body
    from tui.core.tokens import CounterError, make_counter

    try:
        body, dialect = load_request(args.file)
    except InspectError as exc:
        print(f"ctxbudget inspect: {exc}", file=sys.stderr)
        return 1
    servers = tuple(dict.fromkeys([*settings.anatomy.mcp_servers, *args.mcp_server]))
    mode = args.counter or settings.anatomy.counter
    url = args.server or settings.server.url
    preview: dict[str, Any] | None = None
    try:
        counter = make_counter(mode, url, settings.server.api_key)
        anatomy, _ = anatomy_of(split_body(body, dialect, servers), counter)
        if getattr(args, "transforms", False):
            preview = transform_preview(body, anatomy.dialect, counter, settings)
    except (CounterError, ValueError) as exc:
        print(f"ctxbudget inspect: {exc}", file=sys.stderr)
        return 1
    finally:
        close = getattr(locals().get("counter"), "close", None)
        if callable(close):
            close()
    if args.json:
        out = anatomy.to_json(with_parts=args.parts)
        if preview is not None:
            out["transforms"] = preview
        print(json.dumps(out, indent=2))
    else:
        print(printable_lines(render_table(anatomy, with_parts=args.parts)))
        if preview is not None:
            print(printable_lines("\n" + render_preview(preview)))
    return 0


def transform_preview(
    body: dict[str, Any], dialect: str, counter: TokenCounter, settings: Settings
) -> dict[str, Any]:
    """The enabled transforms (config plus runtime switches) applied to a body: savings and a diff."""
    from tui.core.control.transform_state import TransformSwitchStore
    from tui.core.transforms.pipeline import measure_savings, unified_diff_preview

    enabled = list(TransformSwitchStore(settings.transforms.enabled).enabled())
    new_body, savings = measure_savings(body, dialect, counter, enabled, settings.transforms)
    return {
        "enabled": enabled,
        "steps": [
            {
                "name": s.name,
                "changed": s.changed,
                "tokens_before": s.tokens_before,
                "tokens_after": s.tokens_after,
                "saved": s.saved,
                "details": s.details,
            }
            for s in savings
        ],
        "diff": unified_diff_preview(body, new_body),
    }


def render_preview(preview: dict[str, Any]) -> str:
    """Plain-text transform preview: one line per transform, then the diff."""
    if not preview["enabled"]:
        return "transforms: none enabled (see `ctxbudget transforms list`)"
    lines = [
        f"transforms ({', '.join(preview['enabled'])})",
        f"{'transform':<20}{'before':>10}{'after':>10}{'saved':>8}",
    ]
    for step in preview["steps"]:
        lines.append(
            f"{step['name']:<20}{step['tokens_before']:>10,}{step['tokens_after']:>10,}{step['saved']:>8,}"
        )
        lines += [f"    {d}" for d in step["details"][:5]]
    lines += ["", preview["diff"] or "(no change)"]
    return "\n".join(lines)


def render_table(anatomy: Anatomy, with_parts: bool = False) -> str:
    """Plain-text report: categories with tokens and %, MCP servers, top tools."""
    from tui.core.anatomy.model import CATEGORIES

    total = anatomy.total_tokens
    kind = "exact" if anatomy.exact else "estimate"
    lines = [
        f"{anatomy.dialect} request, model {anatomy.model or '?'}, {anatomy.message_count} messages",
        f"counter: {anatomy.counter} ({kind})   total: {total:,} tokens",
        "",
        f"{'category':<18}{'tokens':>10}{'%':>8}",
    ]
    for name in CATEGORIES:
        value = anatomy.categories.get(name, 0)
        if name == "template_overhead" and not value:
            continue
        share = 100.0 * value / total if total else 0.0
        extra = f"  ({anatomy.image_count} images)" if name == "images" and anatomy.image_count else ""
        lines.append(f"{name:<18}{value:>10,}{share:>7.1f}%{extra}")
    if anatomy.mcp_servers:
        lines += ["", f"{'MCP server':<24}{'tools':>6}{'tokens':>10}"]
        for server, info in sorted(anatomy.mcp_servers.items(), key=lambda kv: -kv[1]["tokens"]):
            lines.append(f"{server:<24}{info['tools']:>6}{info['tokens']:>10,}")
    if anatomy.tools:
        lines += ["", f"top tools ({len(anatomy.tools)} schemas)"]
        for tool in sorted(anatomy.tools, key=lambda t: -t.tokens)[:TOP_TOOLS]:
            where = tool.server or "built-in"
            lines.append(f"  {tool.name:<40}{tool.tokens:>8,}  {where}")
    if anatomy.tool_results_by_tool:
        lines += ["", "tool results by tool"]
        for name, value in sorted(anatomy.tool_results_by_tool.items(), key=lambda kv: -kv[1]):
            lines.append(f"  {name:<40}{value:>8,}")
    if with_parts:
        lines += ["", "parts"]
        lines += [f"  {p.label:<50}{p.tokens:>8,}  {p.category}" for p in anatomy.parts]
    return "\n".join(lines)
