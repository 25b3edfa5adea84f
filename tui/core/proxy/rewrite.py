"""The request-rewrite hook: MCP switches, proxy-mode compaction and transforms, applied before forwarding."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from typing import Any

import orjson

from tui.core.actions.compaction_service import CompactionService
from tui.core.actions.mcp_switch import McpSwitchStore, filter_tools, tool_name
from tui.core.analysis.capture import RewriteNote
from tui.core.anatomy.sessions import SESSION_HEADERS
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.proxy.billing_bytes import (
    BILLING_MARKER,
    BILLING_PATTERNS,
    billing_splice,
    has_escaped_ascii,
    holds_marker_once,
)
from tui.core.proxy.json_splice import splice_body
from tui.core.transforms.model import TextEdit, TransformReport
from tui.core.transforms.pipeline import TransformPipeline
from tui.core.transforms.settings import TransformSettings

log = logging.getLogger(__name__)

# Model request paths and their dialects (count_tokens is left alone: it must count what would be sent
# as the client built it, and nothing is generated from it).
MODEL_PATHS: dict[str, str] = {
    "/v1/messages": "anthropic",
    "/v1/chat/completions": "openai",
    "/chat/completions": "openai",
}
# Raw bodies kept for a later compaction while none is active (parsed only when one is asked for): at
# most this many, and at most RECENT_BYTES together (older ones are forgotten first).
RECENT_BODIES = 8
RECENT_BYTES = 64 * 1024 * 1024


def _edits(reports: list[TransformReport]) -> tuple[tuple[str, tuple[TextEdit, ...]], ...]:
    """What each transform that changed the body rewrote, for the worker's token accounting."""
    return tuple((r.name, r.edits) for r in reports if r.changed)


def dialect_of(method: str, raw_path: str) -> str | None:
    """The dialect of a model request path (None: never rewritten)."""
    if method != "POST":
        return None
    return MODEL_PATHS.get(raw_path.split("?", 1)[0])


def session_hint(headers: Mapping[str, str], body: dict[str, Any]) -> str:
    """The client's session id when it states one (header or metadata.user_id JSON), else ''."""
    for name in SESSION_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            return value
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id.startswith("{"):
        try:
            decoded = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            return ""
        if isinstance(decoded, dict) and decoded.get("session_id"):
            return str(decoded["session_id"])
    return ""


class RequestRewriter:
    """Applies the switches in order: MCP filter → compaction (on the original body) → transforms."""

    def __init__(
        self,
        transforms: TransformSettings,
        known_servers: tuple[str, ...],
        mcp: McpSwitchStore,
        switches: TransformSwitchStore,
        compaction: CompactionService | None = None,
    ) -> None:
        self.settings = transforms
        self.known_servers = known_servers
        self.mcp = mcp
        self.switches = switches
        self.compaction = compaction
        try:
            self.pipeline: TransformPipeline | None = TransformPipeline(transforms)
        except ValueError:
            log.exception("[transforms] settings unusable: transforms stay off")
            self.pipeline = None
        self.billing_only = (
            not transforms.stabilizer_patterns and set(transforms.stabilizer_builtins) <= BILLING_PATTERNS
        )
        self.recent: deque[tuple[bytes, str, str]] = deque(maxlen=RECENT_BODIES)
        self.recent_bytes = 0
        self.last_raw: tuple[bytes, str] | None = None
        self.failures = 0

    def enabled_transforms(self) -> tuple[str, ...]:
        """Transforms that run on the next request."""
        return self.switches.enabled() if self.pipeline is not None else ()

    def process(
        self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[bytes, RewriteNote | None]:
        """The bytes to forward (the original object when nothing changed) and what was done; never raises."""
        dialect = dialect_of(method, raw_path)
        if dialect is None or not body:
            return body, None
        self.last_raw = (body, dialect)
        try:
            return self._process(dialect, headers, body)
        except Exception as exc:  # a rewrite bug must never block a request: forward it as sent
            self.failures += 1
            log.exception("request rewrite failed; forwarding the original body")
            return body, RewriteNote(dialect, error=f"{type(exc).__name__}: {exc}")

    def _process(
        self, dialect: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[bytes, RewriteNote | None]:
        enabled = self.enabled_transforms()
        off = self.mcp.off()
        compacting = self.compaction is not None and bool(self.compaction.store.all())
        if not (off or compacting) and self._nothing_to_change(enabled, body):
            self._remember(body, dialect, session_hint(headers, {}))
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
                self._remember(body, dialect, session_hint(headers, {}))
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
        if self.compaction is not None and compacting:
            self.recent.clear()
            self.recent_bytes = 0
            result = self.compaction.observe(parsed, dialect, session_hint(headers, parsed))
            if result.applied:
                compaction_saved = result.tokens_saved
                current = {**current, "messages": result.body["messages"]}
        else:
            # Keep bytes, not the parsed tree: a retained 150 KB tree makes every GC pass slower.
            self._remember(body, dialect, session_hint(headers, parsed))
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

    def _remember(self, body: bytes, dialect: str, session: str) -> None:
        """Keep a raw body for a later compaction, within RECENT_BODIES and RECENT_BYTES."""
        if self.compaction is None:
            return
        if len(self.recent) == self.recent.maxlen:
            self.recent_bytes -= len(self.recent[0][0])
        self.recent.append((body, dialect, session))
        self.recent_bytes += len(body)
        while self.recent_bytes > RECENT_BYTES and self.recent:
            self.recent_bytes -= len(self.recent.popleft()[0])

    def _stabilize_bytes(self, dialect: str, body: bytes) -> tuple[bytes, RewriteNote | None] | None:
        """The billing stabilizer on the raw JSON of a body holding the marker once; None: parse instead."""
        if self.pipeline is None or has_escaped_ascii(body):
            return None
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

    def replay_recent(self) -> None:
        """Let the compaction service see the recent bodies kept unparsed (before a compaction)."""
        if self.compaction is None:
            return
        for raw, dialect, session in list(self.recent):
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                self.compaction.observe(parsed, dialect, session or session_hint({}, parsed))

    def latest_body(self) -> tuple[dict[str, Any], str] | None:
        """The latest model request as the client sent it (parsed now), with its dialect."""
        if self.last_raw is None:
            return None
        raw, dialect = self.last_raw
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return (parsed, dialect) if isinstance(parsed, dict) else None
