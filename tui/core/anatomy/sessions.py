"""Which conversation a request belongs to and what kind of request it is (main, title, subagent...)."""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from tui.core.anatomy.body import header
from tui.core.anatomy.cache_break import Signature
from tui.core.anatomy.pieces import Split

# Claude Code sends the first; opencode (1.18) sends x-session-id and x-session-affinity.
SESSION_HEADERS: tuple[str, ...] = ("x-claude-code-session-id", "x-session-id", "x-session-affinity")
_SESSION_IN_USER_ID = re.compile(r"session_([0-9A-Za-z-]{8,})")
# A system prompt this much shorter than the session's main one belongs to a sub-agent.
SUBAGENT_SYSTEM_RATIO = 0.5
# The agents' own conversation-summary requests (Claude Code's /compact and auto-compact, opencode's).
COMPACT_HINTS = (
    "create a detailed summary of the conversation",
    "create a detailed summary of the recent portion of the conversation",
    "tasked with summarizing conversations",
)
TITLE_HINTS = ("title generator", "generate a title", "a short title", "thread title", "conversation title")


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()


def session_id_of(headers: dict[str, str], body: dict[str, Any], split: Split) -> str:
    """The client's session id (header or metadata.user_id), else a hash of system + first user turn."""
    for name in SESSION_HEADERS:
        explicit = header(headers, name).strip()
        if explicit:
            return explicit
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id:
        try:
            decoded = orjson.loads(user_id)
        except orjson.JSONDecodeError:
            decoded = None
        if isinstance(decoded, dict) and decoded.get("session_id"):
            return str(decoded["session_id"])
        match = _SESSION_IN_USER_ID.search(user_id)
        if match:
            return match.group(1)
    return "h-" + _short_hash(split.system_text + "\x00" + split.first_user)


@dataclass
class SessionState:
    """What a session remembers: its main system prompt and the last signature of each lane."""

    main_system: str = ""
    main_system_len: int = 0
    main_has_tools: bool = False
    lanes: OrderedDict[str, Signature] = field(default_factory=OrderedDict)


@dataclass(frozen=True)
class SessionInfo:
    """A request's session, kind and cache-break lane (None: not part of a timeline)."""

    session_id: str
    kind: str
    lane: str | None


def _is_title(split: Split) -> bool:
    if split.tool_names:
        return False
    if split.json_output:
        return True
    system = split.system_text.lower()
    return len(system) < 8000 and any(hint in system for hint in TITLE_HINTS)


def _is_compact(split: Split) -> bool:
    latest = "\n".join(p.text for p in split.pieces if p.category == "latest_user")
    text = (split.system_text[:4000] + "\n" + latest[:4000]).lower()
    return any(hint in text for hint in COMPACT_HINTS)


class SessionTracker:
    """Bounded memory of recent sessions; assigns kinds and lanes so side requests keep out of timelines."""

    def __init__(self, max_sessions: int = 256, max_lanes: int = 32) -> None:
        self.max_sessions = max_sessions
        self.max_lanes = max_lanes
        self._sessions: OrderedDict[str, SessionState] = OrderedDict()

    def state(self, session_id: str) -> SessionState:
        """The session's state, created on first sight (least recently used ones are forgotten)."""
        state = self._sessions.get(session_id)
        if state is None:
            state = SessionState()
            self._sessions[session_id] = state
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        self._sessions.move_to_end(session_id)
        return state

    def identify(
        self, headers: dict[str, str], body: dict[str, Any], split: Split, counting: bool
    ) -> SessionInfo:
        """Session id, kind (main|title|compact|subagent|count_tokens|other) and lane of one request."""
        session_id = session_id_of(headers, body, split)
        state = self.state(session_id)
        if counting:
            return SessionInfo(session_id, "count_tokens", None)
        if _is_title(split):
            return SessionInfo(session_id, "title", None)
        if _is_compact(split):
            return SessionInfo(session_id, "compact", None)
        sub_lane = "sub:" + _short_hash(split.system_text + "\x00" + split.first_user)
        if split.billing.get("cc_is_subagent", "").lower() == "true":
            return SessionInfo(session_id, "subagent", sub_lane)
        if state.main_system_len:
            if not split.tool_names and state.main_has_tools:
                return SessionInfo(session_id, "other", None)
            shorter = len(split.system_text) < state.main_system_len * SUBAGENT_SYSTEM_RATIO
            if split.system_text != state.main_system and shorter:
                return SessionInfo(session_id, "subagent", sub_lane)
        state.main_system = split.system_text
        state.main_system_len = max(1, len(split.system_text))
        state.main_has_tools = bool(split.tool_names)
        return SessionInfo(session_id, "main", "main")

    def previous(self, session_id: str, lane: str) -> Signature | None:
        """The last signature seen in a lane."""
        state = self._sessions.get(session_id)
        return state.lanes.get(lane) if state else None

    def remember(self, session_id: str, lane: str, sig: Signature) -> None:
        """Keep a lane's newest signature (bounded number of lanes per session)."""
        lanes = self.state(session_id).lanes
        lanes[lane] = sig
        lanes.move_to_end(lane)
        while len(lanes) > self.max_lanes:
            lanes.popitem(last=False)
