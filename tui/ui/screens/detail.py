"""Request detail: a tree of parts down to each tool schema and message, cache break, timings, raw body."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import replace

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static, TextArea, Tree
from textual.widgets.tree import TreeNode

from tui.core.feed.feed import DashboardFeed
from tui.core.feed.views import CATEGORY_LABELS, mcp_server_of
from tui.core.records import RequestRecord, folded_ref_id
from tui.core.terminal_text import printable, printable_lines
from tui.ui.format import clock, grouped, millis, percent, rate
from tui.ui.keys import bindings

MAX_BODY_CHARS = 400_000


def summary_text(record: RequestRecord, window: int, tz: dt.tzinfo | None) -> Text:
    """Who/when/what, usage and timings, and the cache-break explanation."""
    usage = record.usage
    text = Text()
    text.append(f"#{record.id} ", style="bold")
    text.append(f"{record.method} {printable(record.path)}  {record.status or '–'}  {clock(record.ts, tz)}\n")
    answered = usage.response_model
    by = f" (answered by {printable(answered)})" if answered and answered != record.model else ""
    text.append(
        f"session {printable(record.session_id or '–')}  kind {record.kind}  "
        f"model {printable(record.model or '–')}{by}  "
        f"{record.dialect or '?'}{' stream' if record.stream else ''}\n",
        style="dim",
    )
    prompt = record.prompt_tokens
    text.append(f"prompt {grouped(prompt)}")
    if window and prompt:
        text.append(f" ({percent(prompt / window)} of {grouped(window)})", style="dim")
    text.append(f"  cached {grouped(usage.cached_tokens)}  out {grouped(usage.output_tokens)}")
    text.append(f"  stop {usage.stop_reason or '–'}\n")
    text.append(
        f"pp {rate(usage.prompt_per_second)} t/s in {millis(usage.prompt_ms)}  "
        f"tg {rate(usage.gen_per_second)} t/s in {millis(usage.gen_ms)}  "
        f"TTFB {millis(record.ttfb_ms)}  total {millis(record.total_ms)}"
    )
    if record.anatomy is not None:
        anatomy = record.anatomy
        text.append(
            f"\ncounted with {anatomy.counter or '?'} ({'exact' if anatomy.exact else 'approximate'})",
            style="dim",
        )
    cb = record.cache_break
    if cb is not None:
        text.append("\ncache break: ", style="bold")
        text.append(
            f"{cb.where}: {printable(cb.description)}; reusable prefix {grouped(cb.reusable_prefix_tokens)}"
        )
        if cb.server_reused_tokens is not None:
            text.append(f", server reused {grouped(cb.server_reused_tokens)}")
    elif record.anatomy is not None:
        text.append(
            "\ncache break: none (first request of its lane, a side request, or the server reused"
            " the previous prompt)",
            style="dim",
        )
    for label, value in (("unparsed", record.unparsed_reason), ("error", record.error)):
        if value:
            text.append(f"\n{label}: {printable(value)}", style="bold red")
    shown = record.anatomy
    if shown is not None and shown.rendered:
        sent = sum(shown.as_sent.values())
        text.append(f"\ncounted as the server's chat template renders it; as sent: {grouped(sent)} tokens")
        if shown.dropped:
            dropped = ", ".join(printable(d) for d in shown.dropped[:8])
            more = f" and {len(shown.dropped) - 8} more" if len(shown.dropped) > 8 else ""
            text.append(
                f"\ndropped by the chat template: {dropped}{more}; tool calling cannot work: use a "
                "tool-capable template (--chat-template-file) or model",
                style="bold red",
            )
    return text


def fill_tree(root: TreeNode[None], record: RequestRecord) -> None:
    """Categories -> (MCP servers ->) parts, each with tokens and share of the prompt."""
    anatomy = record.anatomy
    if anatomy is None:
        root.add_leaf(Text(printable(record.unparsed_reason or "no anatomy for this request")))
        return
    total = max(1, anatomy.total_tokens)
    parts_by_cat: dict[str, list[tuple[str, int, str | None]]] = {}
    for part in anatomy.parts:
        server = part.server or mcp_server_of(part.tool)
        parts_by_cat.setdefault(part.category, []).append((part.label, part.tokens, server))
    for name, label in CATEGORY_LABELS.items():
        count = anatomy.categories.get(name, 0)
        if name == "free" or (count == 0 and name not in parts_by_cat):
            continue
        node = root.add(_label(label, count, total), expand=name in ("mcp_tools",))
        items = parts_by_cat.get(name, [])
        if name == "tools" and not items:
            items = [(f"tool {t.name}", t.tokens, None) for t in anatomy.tools if not t.server]
        if name == "mcp_tools":
            if not items:
                items = [(f"tool {t.name}", t.tokens, t.server) for t in anatomy.tools if t.server]
            servers: dict[str, list[tuple[str, int, str | None]]] = {}
            for item in items:
                servers.setdefault(item[2] or "?", []).append(item)
            for server, server_items in servers.items():
                sub = node.add(
                    _label(f"{server} ({len(server_items)} tools)", sum(i[1] for i in server_items), total)
                )
                for item_label, tokens, _ in server_items:
                    sub.add_leaf(_label(item_label, tokens, total))
            continue
        if name == "tool_results" and anatomy.tool_results_by_tool and not items:
            items = [
                (f"results of {tool}", tokens, None) for tool, tokens in anatomy.tool_results_by_tool.items()
            ]
        for item_label, tokens, _ in items:
            node.add_leaf(_label(item_label, tokens, total))
        if not items:
            node.allow_expand = False
    root.expand()


FOLDED_PREVIEW_CHARS = 160


def folded_messages(folded: str) -> list[object]:
    """The folded messages parsed back from their exact text ([] when it does not parse)."""
    try:
        messages = json.loads("[" + folded + "]")
    except ValueError:
        return []
    return messages if isinstance(messages, list) else []


def resolve_folded(
    record: RequestRecord, load: Callable[[int], RequestRecord | None]
) -> RequestRecord:
    """The record with its folded turns (the compaction's first row holds them; later rows point there)."""
    ref = folded_ref_id(record.compaction_folded)
    if ref is None:
        return record
    holder = load(ref)
    return replace(record, compaction_folded=holder.compaction_folded if holder is not None else None)


def fill_folded(root: TreeNode[None], record: RequestRecord, loaded: bool = True) -> None:
    """The turns a proxy compaction folded out of this request: one leaf per message, role and start."""
    from tui.core.actions.compaction import message_text

    if record.compaction_saved_tokens is None:
        return
    if not record.compaction_folded:
        kept = "not kept in this journal (or its first row was pruned)" if loaded else "loading…"
        root.add_leaf(Text("folded by compaction: " + kept))
        return
    messages = folded_messages(record.compaction_folded)
    size = len(record.compaction_folded.encode("utf-8"))
    node = root.add(
        Text.assemble(
            ("folded by compaction", "bold"),
            f"  {len(messages)} messages, {grouped(size)} bytes as sent (u undoes: they go out again)",
        )
    )
    for index, message in enumerate(messages):
        role = message.get("role", "?") if isinstance(message, dict) else "?"
        text = " ".join(message_text(message).split())
        if len(text) > FOLDED_PREVIEW_CHARS:
            text = text[:FOLDED_PREVIEW_CHARS] + "…"
        node.add_leaf(Text(printable(f"{index} {role}: {text}")))


def _label(label: str, tokens: int, total: int) -> Text:
    shown = printable(label)  # tool and server names come from request bodies
    return Text.assemble(shown, (f"  {grouped(tokens)}", "bold"), (f"  {percent(tokens / total)}", "dim"))


class RequestDetailScreen(Screen[None]):
    """One request; loads its parts and body in worker threads."""

    BINDINGS = bindings("detail")

    def __init__(
        self, record: RequestRecord, feed: DashboardFeed, window: int, *, tz: dt.tzinfo | None
    ) -> None:
        super().__init__()
        self.record = record
        self.feed = feed
        self.window = window
        self.tz = tz
        self.body_loaded = False

    def compose(self) -> ComposeResult:
        """Summary, tree, hidden body view."""
        with Vertical(id="detail"):
            yield Static(summary_text(self.record, self.window, self.tz), id="detail-summary")
            tree: Tree[None] = Tree(
                f"#{self.record.id} · {grouped(self.record.prompt_tokens)} tokens", id="detail-tree"
            )
            yield tree
            yield TextArea("", read_only=True, id="detail-body", soft_wrap=False, show_line_numbers=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        """Fill the tree; load the parts when the listing row had none."""
        self.query_one("#detail-body").display = False
        self.query_one("#detail", Vertical).border_title = f"request #{self.record.id}"
        tree = self.query_one(Tree)
        fill_tree(tree.root, self.record)
        fill_folded(tree.root, self.record, loaded=False)
        tree.focus()
        anatomy = self.record.anatomy
        folded_missing = self.record.compaction_saved_tokens is not None and not self.record.compaction_folded
        if (anatomy is not None and not anatomy.parts) or folded_missing:
            self.load_parts()

    @work(thread=True, exclusive=True, group="detail-parts", exit_on_error=False, description="load parts")
    def load_parts(self) -> None:
        """Read the record with its parts (journal) off the event loop."""
        load = self.feed.driver.load_record
        full = load(self.record.id)
        if full is not None:
            self.app.call_from_thread(self._show_parts, resolve_folded(full, load))

    def _show_parts(self, record: RequestRecord) -> None:
        self.record = record
        tree = self.query_one(Tree)
        tree.clear()
        fill_tree(tree.root, record)
        fill_folded(tree.root, record)

    def action_toggle_body(self) -> None:
        """Show or hide the raw request body (loaded on first use)."""
        area = self.query_one("#detail-body", TextArea)
        area.display = not area.display
        if area.display:
            if not self.body_loaded:
                area.text = "loading…"
                self.load_body()
            area.focus()
        else:
            self.query_one(Tree).focus()

    @work(thread=True, exclusive=True, group="detail-body", exit_on_error=False, description="load body")
    def load_body(self) -> None:
        """Read and pretty-print the stored body off the event loop."""
        body = self.feed.driver.load_body(self.record.id)
        if body is None:
            text = (
                "no body stored for this request: set [journal] store_bodies = true to keep request bodies"
                if self.feed.info.mode != "demo"
                else "the recording holds no body for this request"
            )
        else:
            raw = body.decode("utf-8", "replace")
            try:
                text = json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
            except ValueError:
                text = raw
            text = printable_lines(text)  # a body is client text: no terminal controls
            if len(text) > MAX_BODY_CHARS:
                text = text[:MAX_BODY_CHARS] + f"\n… cut at {MAX_BODY_CHARS:,} characters"
        self.app.call_from_thread(self._show_body, text)

    def _show_body(self, text: str) -> None:
        self.body_loaded = True
        self.query_one("#detail-body", TextArea).text = text
