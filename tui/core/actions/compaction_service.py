"""What the proxy calls for proxy-mode compaction: observe and rewrite each request, compact, undo."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tui.core.actions.compaction import (
    Compaction,
    CompactionError,
    CompactionStore,
    RewriteResult,
    apply_compaction,
    is_turn_start,
    leading_system_count,
    message_hash,
)
from tui.core.actions.compaction_summary import compact_async
from tui.core.tokens import TokenCounter

if TYPE_CHECKING:
    import httpx  # imported when a summary is asked for: the proxy process starts without it

MAX_CONVERSATIONS = 8


@dataclass(frozen=True)
class ObservedBody:
    """The latest original (not rewritten) body of one conversation."""

    key: str
    dialect: str
    body: dict[str, Any]
    user_turns: int
    seen: float
    raw: bytes | None = None  # the client's bytes of `body` (the folded turns are kept exactly from them)


def conversation_key(body: dict[str, Any], session_id: str = "") -> str:
    """The session id when known, else a hash of the first conversation message (stable per conversation)."""
    if session_id:
        return session_id
    messages = body.get("messages") or []
    first = messages[leading_system_count(messages)] if len(messages) > leading_system_count(messages) else {}
    return "conv-" + message_hash(first)[:12]


def journal_session_id(item: ObservedBody) -> str:
    """The session id the journal gives this conversation (the anatomy's), for ids picked in the dashboard."""
    from tui.core.anatomy.analyze import split_body
    from tui.core.anatomy.sessions import session_id_of

    try:
        return session_id_of({}, item.body, split_body(item.body, item.dialect, ()))
    except Exception:  # an odd body has no journal id; the key still matches
        return ""


class CompactionService:
    """The latest body per conversation plus the active compactions; thread-safe."""

    def __init__(
        self,
        store: CompactionStore | None = None,
        *,
        upstream: str,
        api_key: str = "",
        counter: TokenCounter | None = None,
        max_tokens: int | None = None,  # None: scaled to the prefix (summary_budget)
        context_tokens: int = 0,
    ) -> None:
        self.store = store or CompactionStore()
        self.upstream = upstream
        self.api_key = api_key
        self.counter = counter
        self.max_tokens = max_tokens
        # The server's per-slot context (update it from the server poller): bounds the summary request.
        self.context_tokens = context_tokens
        self._lock = threading.Lock()
        self._bodies: OrderedDict[str, ObservedBody] = OrderedDict()

    def observe(
        self, body: dict[str, Any], dialect: str, session_id: str = "", raw: bytes | None = None
    ) -> RewriteResult:
        """Remember the original body and its bytes; rewrite it when it begins with a compacted prefix."""
        messages = body.get("messages")
        if not isinstance(messages, list) or dialect not in ("anthropic", "openai"):
            return RewriteResult(body, False, reason="not a chat request")
        key = conversation_key(body, session_id)
        turns = sum(1 for m in messages if is_turn_start(m, dialect))
        with self._lock:
            self._bodies[key] = ObservedBody(key, dialect, body, turns, time.time(), raw)
            self._bodies.move_to_end(key)
            while len(self._bodies) > MAX_CONVERSATIONS:
                self._bodies.popitem(last=False)
        result = self.rewrite(body)
        own = self.store.get(key)
        if not result.applied and own is not None:
            self.store.note_miss(key, apply_compaction(body, own).reason)
        return result

    def rewrite(self, body: dict[str, Any]) -> RewriteResult:
        """Apply whichever active compaction's prefix this body begins with (sessions need not be known)."""
        messages = body.get("messages")
        if not isinstance(messages, list):
            return RewriteResult(body, False, reason="no messages")
        for item in self.store.all():
            size = len(item.prefix_hashes)
            if len(messages) > size and message_hash(messages[0]) == item.prefix_hashes[0]:
                result = apply_compaction(body, item)
                if result.applied:
                    self.store.note_rewrite(item.session_id)
                    return result
        return RewriteResult(body, False, reason="no matching compaction")

    def pick(self, session_id: str | None = None) -> ObservedBody:
        """The body to compact: the session's, else the latest conversation with the most user turns."""
        with self._lock:
            observed = list(self._bodies.values())
        if session_id:
            for item in observed:
                if item.key == session_id or journal_session_id(item) == session_id:
                    return item
            known = ", ".join(o.key for o in observed) or "none"
            raise CompactionError(f"no request seen for session {session_id!r} (seen: {known})")
        if not observed:
            raise CompactionError("no chat request has gone through the proxy yet")
        recent = [o for o in observed if o.seen >= observed[-1].seen - 600]
        return max(recent, key=lambda o: (o.user_turns, o.seen))

    async def compact(
        self,
        session_id: str | None = None,
        keep_turns: int = 2,
        client: httpx.AsyncClient | None = None,
        focus: str = "",
    ) -> Compaction:
        """Summarise the chosen conversation's older turns with the upstream model and activate the result."""
        target = self.pick(session_id)
        item = await compact_async(
            target.body, target.dialect, target.key, upstream=self.upstream, keep_turns=keep_turns,
            api_key=self.api_key, counter=self.counter, client=client, max_tokens=self.max_tokens,
            context_tokens=self.context_tokens, focus=focus, raw=target.raw,
        )  # fmt: skip
        self.store.add(item)
        return item

    def undo(self, session_id: str | None = None) -> str | None:
        """Drop a compaction (the newest when no session is given); returns the session undone."""
        if session_id is None:
            items = self.store.all()
            if not items:
                return None
            session_id = items[0].session_id
        return session_id if self.store.undo(session_id) else None
