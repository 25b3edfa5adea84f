"""The request-rewrite hook: MCP switches, proxy-mode compaction and transforms, applied before forwarding."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from tui.core.actions.mcp_switch import filter_tools, tool_name
from tui.core.analysis.capture import RewriteNote
from tui.core.control.controls import ProxyControls
from tui.core.proxy.billing_bytes import (
    BILLING_MARKER,
    BILLING_PATTERNS,
    billing_splice,
    has_escaped_ascii,
    holds_marker_once,
)
from tui.core.proxy.json_splice import splice_body
from tui.core.proxy.session_hint import session_hint
from tui.core.proxy.system_view import SystemReader
from tui.core.transforms.model import TextEdit, TransformReport

log = logging.getLogger(__name__)

# Model request paths and their dialects (count_tokens is left alone: it must count what would be sent
# as the client built it, and nothing is generated from it).
MODEL_PATHS: dict[str, str] = {
    "/v1/messages": "anthropic",
    "/v1/chat/completions": "openai",
    "/chat/completions": "openai",
}

def _edits(reports: list[TransformReport]) -> tuple[tuple[str, tuple[TextEdit, ...]], ...]:
    """What each transform that changed the body rewrote, for the worker's token accounting."""
    return tuple((r.name, r.edits) for r in reports if r.changed)


def dialect_of(method: str, raw_path: str) -> str | None:
    """The dialect of a model request path (None: never rewritten)."""
    if method != "POST":
        return None
    return MODEL_PATHS.get(raw_path.split("?", 1)[0])


class RequestRewriter:
    """Applies the switches in order: MCP filter → compaction (on the original body) → transforms.

    MCP switches and compaction are the requesting user's (`controls` keeps them per user); transforms
    are the proxy's.
    """

    def __init__(self, controls: ProxyControls) -> None:
        self.controls = controls
        self.settings = controls.settings.transforms
        self.known_servers = tuple(controls.settings.anatomy.mcp_servers)
        self.pipeline = controls.pipeline
        self.billing_only = (
            not self.settings.stabilizer_patterns
            and set(self.settings.stabilizer_builtins) <= BILLING_PATTERNS
        )
        self.system_reader = SystemReader()
        self.failures = 0

    def enabled_transforms(self) -> tuple[str, ...]:
        """Transforms that run on the next request."""
        return self.controls.enabled_transforms()

    def process(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes, user: str = ""
    ) -> tuple[bytes, RewriteNote | None]:
        """The bytes to forward (the original object when nothing changed) and what was done; never raises."""
        dialect = dialect_of(method, raw_path)
        if dialect is None or not body:
            return body, None
        self.controls.last_raw = (body, dialect)
        try:
            return self._process(dialect, headers, body, user)
        except Exception as exc:  # a rewrite bug must never block a request: forward it as sent
            self.failures += 1
            log.exception("request rewrite failed; forwarding the original body")
            return body, RewriteNote(dialect, error=f"{type(exc).__name__}: {exc}")

    def _process(
        self, dialect: str, headers: Mapping[str, str], body: bytes, user: str
    ) -> tuple[bytes, RewriteNote | None]:
        controls = self.controls
        enabled = controls.enabled_transforms()
        off = controls.mcp_off(user)
        compaction = controls.compaction_for(user)
        compacting = compaction is not None and bool(compaction.store.all())
        if not (off or compacting) and self._nothing_to_change(enabled, body):
            self._remember(user, body, dialect, session_hint(headers, {}))
            return body, (RewriteNote(dialect, tuple(enabled)) if enabled else None)
        if (
            not (off or compacting)
            and enabled == ("stabilize",)
            and self.billing_only
            # Claude Code sends the line once, in system[0]; a second copy (say, pasted into a message)
            # needs the parsed body to keep the pattern to the system prompt.
            and holds_marker_once(body)
        ):
            fast = self._stabilize_bytes(dialect, body)
            if fast is not None:
                self._remember(user, body, dialect, session_hint(headers, {}))
                return fast
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body, None
        if not isinstance(parsed, dict):
            return body, None
        current: dict[str, Any] = parsed
        removed: tuple[dict[str, Any], ...] = ()
        if off:
            filtered = filter_tools(current, off, self.known_servers)
            if filtered.changed:
                names = set(filtered.removed)
                removed = tuple(t for t in current.get("tools") or [] if tool_name(t) in names)
                current = filtered.body
        compaction_saved: int | None = None
        folded: str | None = None
        if compaction is not None and compacting:
            controls.recent.clear(user)
            result = compaction.observe(parsed, dialect, session_hint(headers, parsed), body)
            if result.applied:
                compaction_saved = result.tokens_saved
                folded = result.compaction.folded if result.compaction is not None else None
                current = {**current, "messages": result.body["messages"]}
        else:
            # Keep bytes, not the parsed tree: a retained 150 KB tree makes every GC pass slower.
            self._remember(user, body, dialect, session_hint(headers, parsed))
        edits: tuple[tuple[str, tuple[TextEdit, ...]], ...] = ()
        if enabled and self.pipeline is not None:
            current, reports = self.pipeline.run(current, dialect, enabled)
            edits = _edits(reports)
        note = RewriteNote(
            dialect,
            tuple(enabled),
            tuple(name for name, _ in edits),
            edits,
            removed,
            compaction_saved,
            compaction_folded=folded,
        )
        if not note.rewritten:
            return body, note
        return self._splice(body, parsed, current), note

    def _splice(self, body: bytes, parsed: dict[str, Any], current: dict[str, Any]) -> bytes:
        """The client's bytes with only the changed values rewritten (checked: it parses to `current`)."""
        try:
            out = splice_body(body, parsed, current)
            if orjson.loads(out) == current:
                return out
            problem = "the spliced body does not parse to the rewritten one"
        except (ValueError, StopIteration, RecursionError, orjson.JSONDecodeError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        self.failures += 1
        log.error("request splice failed (%s); forwarding the rewrite re-serialised", problem)
        return orjson.dumps(current)

    def _remember(self, user: str, body: bytes, dialect: str, session: str) -> None:
        """Keep a raw body for a later compaction of this user's session."""
        if self.controls.compaction is not None:
            self.controls.recent.add(user, body, dialect, session)

    def _stabilize_bytes(self, dialect: str, body: bytes) -> tuple[bytes, RewriteNote | None] | None:
        """The billing stabilizer on the raw JSON of a body holding the marker once; None: parse instead."""
        if self.pipeline is None or has_escaped_ascii(body):
            return None
        parsed: Any
        if dialect == "anthropic":
            # Only the system prompt is built: the one string holding the marker is either in it (the
            # stabilizer's result on it alone is the whole body's) or elsewhere, where billing_splice
            # sees a rewrite the stabilizer did not make and gives up (then the body is parsed whole).
            view = self.system_reader.read(body)
            if view is None:
                return None
            parsed = view.as_body()
        else:
            try:  # the tree is only compared, never dumped: the forwarded bytes are the client's
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                return body, None
            if not isinstance(parsed, dict):
                return None
        expected, reports = self.pipeline.run(parsed, dialect, ("stabilize",))
        out = billing_splice(
            body, parsed, expected, self.settings.stabilizer_builtins, escapes_checked=True
        )
        if out is None:
            return None
        if out is body:
            return body, RewriteNote(dialect, ("stabilize",))
        return out, RewriteNote(dialect, ("stabilize",), ("stabilize",), _edits(reports))

    def _nothing_to_change(self, enabled: tuple[str, ...], body: bytes) -> bool:
        """True when no enabled transform could change this body (decided without parsing it)."""
        if not enabled:
            return True
        return (
            enabled == ("stabilize",)
            and self.billing_only
            and BILLING_MARKER not in body
            and not has_escaped_ascii(body)  # the marker could be spelled with \u escapes
        )
