"""Proxy-mode compaction: where to cut a conversation, the summary that replaces the cut prefix, and
the store that rewrites every later request of the session beginning with that prefix."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui.core.actions.state_files import data_dir, read_json, write_json_atomic
from tui.core.proxy.json_splice import SpanLocator

STATE_FILE = "compactions.json"
SYSTEM_ROLES = ("system", "developer")
SUMMARY_HEADER = "[ctxbudget compacted the earlier conversation into this summary]\n\n"
SUMMARY_CUT_NOTE = "the summary stopped at its token budget and ends mid-way"
ACK_TEXT = "Understood. I have the summary of our earlier conversation and will continue from there."


class CompactionError(ValueError):
    """A conversation cannot be compacted (too few turns, bad body, summary failed)."""


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, list):
        return [b for b in content if isinstance(b, dict)]
    return []


def is_turn_start(message: Any, dialect: str) -> bool:
    """A user message that answers no tool call: a safe place to cut (tool pairs stay together)."""
    if not isinstance(message, dict) or message.get("role") != "user":
        return False
    if dialect == "anthropic":
        return not any(b.get("type") == "tool_result" for b in _blocks(message))
    return True  # OpenAI tool results are role "tool" messages, never "user"


def leading_system_count(messages: Sequence[Any]) -> int:
    """How many system/developer messages open the list (kept untouched by compaction)."""
    count = 0
    for message in messages:
        if not isinstance(message, dict) or message.get("role") not in SYSTEM_ROLES:
            break
        count += 1
    return count


def choose_cut(messages: Sequence[Any], dialect: str, keep_turns: int) -> int:
    """Index where the kept tail starts: the start of the `keep_turns`-th last user turn."""
    if keep_turns < 1:
        raise CompactionError("keep_turns must be at least 1 (the latest user turn is always kept)")
    lead = leading_system_count(messages)
    starts = [i for i in range(lead, len(messages)) if is_turn_start(messages[i], dialect)]
    if len(starts) <= keep_turns:
        raise CompactionError(
            f"nothing to compact: the conversation has {len(starts)} user turn(s) and "
            f"{keep_turns} are kept; lower --keep-turns or wait for more turns"
        )
    return starts[-keep_turns]


def _strip_volatile(value: Any) -> Any:
    """Drop cache_control markers: clients move them between requests without changing content."""
    if isinstance(value, dict):
        return {k: _strip_volatile(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_strip_volatile(v) for v in value]
    return value


def message_hash(message: Any) -> str:
    """Content hash of one message, stable across key order and cache_control markers."""
    canonical = json.dumps(
        _strip_volatile(message), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.blake2b(canonical.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def message_text(message: Any) -> str:
    """The text of a message as the model reads it (text, thinking, tool calls and results)."""
    if not isinstance(message, dict):
        return ""
    pieces: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        pieces.append(content)
    for block in _blocks(message):
        kind = block.get("type")
        if kind == "text":
            pieces.append(str(block.get("text", "")))
        elif kind == "thinking":
            pieces.append(str(block.get("thinking", "")))
        elif kind == "tool_use":
            pieces.append(f"{block.get('name', '')} {json.dumps(block.get('input', {}), ensure_ascii=False)}")
        elif kind == "tool_result":
            inner = block.get("content")
            if isinstance(inner, str):
                pieces.append(inner)
            elif isinstance(inner, list):
                pieces.extend(str(b.get("text", "")) for b in inner if isinstance(b, dict))
    for call in message.get("tool_calls") or []:
        function = call.get("function", {}) if isinstance(call, dict) else {}
        pieces.append(f"{function.get('name', '')} {function.get('arguments', '')}")
    if message.get("reasoning_content"):
        pieces.append(str(message["reasoning_content"]))
    return "\n".join(p for p in pieces if p)


def replacement_messages(prefix: Sequence[dict[str, Any]], summary: str) -> list[dict[str, Any]]:
    """System messages of the prefix (kept), then the summary as a user turn and a short assistant reply."""
    kept = [m for m in prefix if isinstance(m, dict) and m.get("role") in SYSTEM_ROLES]
    text = SUMMARY_HEADER + (summary.strip() or "(the summary came back empty)")
    return [*kept, {"role": "user", "content": text}, {"role": "assistant", "content": ACK_TEXT}]


def validation_problems(messages: Sequence[Any], dialect: str) -> list[str]:
    """Why a message list would be rejected: role order and tool call/result pairing (empty = valid)."""
    problems: list[str] = []
    convo = [
        (i, m) for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") not in SYSTEM_ROLES
    ]
    if dialect == "anthropic":
        for i, m in enumerate(messages):
            if isinstance(m, dict) and m.get("role") in SYSTEM_ROLES and i >= leading_system_count(messages):
                problems.append(f"message {i}: system message after the conversation started")
        if convo and convo[0][1].get("role") != "user":
            problems.append("first message is not a user message")
        for (_, a), (j, b) in zip(convo, convo[1:], strict=False):
            if a.get("role") == b.get("role"):
                problems.append(f"message {j}: two {b.get('role')} messages in a row")
        problems += _anthropic_pairing(convo)
    else:
        problems += _openai_pairing(messages)
    if convo and convo[-1][1].get("role") not in ("user", "tool"):
        problems.append("the last message is not a user/tool message")
    return problems


def _anthropic_pairing(convo: list[tuple[int, dict[str, Any]]]) -> list[str]:
    problems: list[str] = []
    pending: set[str] = set()
    for index, message in convo:
        blocks = _blocks(message)
        if message.get("role") == "user":
            results = {str(b.get("tool_use_id")) for b in blocks if b.get("type") == "tool_result"}
            if results - pending:
                problems.append(f"message {index}: tool_result without a tool_use just before it")
            if pending - results:
                problems.append(f"message {index}: tool_use left without its tool_result")
            pending = set()
        else:
            if pending:
                problems.append(f"message {index}: tool_use left without its tool_result")
            pending = {str(b.get("id")) for b in blocks if b.get("type") == "tool_use"}
    return problems


def _openai_pairing(messages: Sequence[Any]) -> list[str]:
    problems: list[str] = []
    pending: set[str] = set()
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "tool":
            call_id = str(message.get("tool_call_id"))
            if call_id not in pending:
                problems.append(f"message {index}: tool message without a matching tool call")
            pending.discard(call_id)
            continue
        if pending:
            problems.append(f"message {index}: tool call(s) left without a tool message")
            pending = set()
        if role == "assistant":
            pending = {str(c.get("id")) for c in message.get("tool_calls") or [] if isinstance(c, dict)}
    return problems


@dataclass(frozen=True)
class Compaction:
    """One session's compacted prefix: how to recognise it and what replaces it."""

    session_id: str
    dialect: str
    prefix_hashes: tuple[str, ...]
    replacement: tuple[dict[str, Any], ...]
    summary: str
    prefix_tokens: int
    summary_tokens: int
    counter: str
    exact: bool
    keep_turns: int
    model: str = ""
    created: float = field(default_factory=time.time)
    # The model stopped at the summary's token budget: the summary ends mid-way.
    summary_cut: bool = False
    # What the user asked the summary to keep in view ("" = the general summary).
    focus: str = ""
    # The folded messages as the client's bytes held them (UTF-8 text from the first folded message's
    # opening brace to the last one's closing brace); `folded_exact` False: re-serialised, not the client's.
    folded: str = ""
    folded_exact: bool = False

    @property
    def tokens_saved(self) -> int:
        """Tokens each rewritten request saves (prefix minus summary)."""
        return self.prefix_tokens - self.summary_tokens

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form for the state file and the control API."""
        return {
            "session_id": self.session_id,
            "dialect": self.dialect,
            "prefix_hashes": list(self.prefix_hashes),
            "replacement": list(self.replacement),
            "summary": self.summary,
            "prefix_tokens": self.prefix_tokens,
            "summary_tokens": self.summary_tokens,
            "tokens_saved": self.tokens_saved,
            "counter": self.counter,
            "exact": self.exact,
            "keep_turns": self.keep_turns,
            "model": self.model,
            "created": self.created,
            "summary_cut": self.summary_cut,
            "focus": self.focus,
            "folded": self.folded,
            "folded_exact": self.folded_exact,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Compaction:
        """Rebuild from `to_json` output."""
        return cls(
            session_id=str(data["session_id"]),
            dialect=str(data["dialect"]),
            prefix_hashes=tuple(data["prefix_hashes"]),
            replacement=tuple(data["replacement"]),
            summary=str(data["summary"]),
            prefix_tokens=int(data["prefix_tokens"]),
            summary_tokens=int(data["summary_tokens"]),
            counter=str(data.get("counter", "")),
            exact=bool(data.get("exact", False)),
            keep_turns=int(data.get("keep_turns", 1)),
            model=str(data.get("model", "")),
            created=float(data.get("created", 0.0)),
            summary_cut=bool(data.get("summary_cut", False)),
            focus=str(data.get("focus", "")),
            folded=str(data.get("folded", "")),
            folded_exact=bool(data.get("folded_exact", False)),
        )


@dataclass(frozen=True)
class RewriteResult:
    """A request after the compaction rewriter (pass-through when `applied` is False)."""

    body: dict[str, Any]
    applied: bool
    tokens_saved: int = 0
    reason: str = ""
    compaction: Compaction | None = None  # the compaction applied (its folded turns go to the journal)


class CompactionStore:
    """Active compactions per session, in memory and persisted as JSON in the user data dir."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or data_dir() / STATE_FILE
        self._lock = threading.Lock()
        self._items: dict[str, Compaction] = {}
        self.rewritten: dict[str, int] = {}
        # Per session: why its latest request was sent without the summary (cleared by a rewrite).
        self.misses: dict[str, str] = {}
        data = read_json(self.path)
        for raw in data.get("compactions", []) if isinstance(data, dict) else []:
            try:
                item = Compaction.from_json(raw)
            except (KeyError, TypeError, ValueError):
                continue
            self._items[item.session_id] = item

    def _save(self) -> None:
        write_json_atomic(
            self.path, {"version": 1, "compactions": [c.to_json() for c in self._items.values()]}
        )

    def add(self, compaction: Compaction) -> None:
        """Activate a compaction (replacing an earlier one of the same session)."""
        with self._lock:
            self._items[compaction.session_id] = compaction
            self.rewritten[compaction.session_id] = 0
            self.misses.pop(compaction.session_id, None)
            self._save()

    def get(self, session_id: str) -> Compaction | None:
        """The active compaction of a session."""
        with self._lock:
            return self._items.get(session_id)

    def all(self) -> list[Compaction]:
        """All active compactions, newest first."""
        with self._lock:
            return sorted(self._items.values(), key=lambda c: -c.created)

    def undo(self, session_id: str) -> bool:
        """Drop a session's compaction: its requests pass through unchanged again."""
        with self._lock:
            removed = self._items.pop(session_id, None)
            self.rewritten.pop(session_id, None)
            self.misses.pop(session_id, None)
            if removed is not None:
                self._save()
            return removed is not None

    def rewrite(self, body: dict[str, Any], session_id: str) -> RewriteResult:
        """Replace the compacted prefix when the request's messages begin with it."""
        item = self.get(session_id)
        if item is None:
            return RewriteResult(body, False, reason="no compaction for this session")
        result = apply_compaction(body, item)
        if result.applied:
            self.note_rewrite(session_id)
        return result

    def note_rewrite(self, session_id: str) -> None:
        """Count one rewritten request of a session (shown as "applied to N requests")."""
        with self._lock:
            self.rewritten[session_id] = self.rewritten.get(session_id, 0) + 1
            self.misses.pop(session_id, None)

    def note_miss(self, session_id: str, reason: str) -> None:
        """Remember why the session's latest request went out without the summary."""
        with self._lock:
            if session_id in self._items:
                self.misses[session_id] = reason

    def status(self, session_id: str) -> tuple[str, str]:
        """("waiting" | "applied" | "not applying", detail) for a session's compaction."""
        with self._lock:
            miss = self.misses.get(session_id)
            count = self.rewritten.get(session_id, 0)
        if miss is not None:
            return "not applying", f"{miss}; compact again (c) to summarise the new history, or undo (u)"
        if count:
            return "applied", f"applied to {count} request(s)"
        return "waiting", "no request of this session since the compaction"


def apply_compaction(body: dict[str, Any], item: Compaction) -> RewriteResult:
    """The body with the prefix replaced, or the body unchanged with the reason it did not match."""
    messages = body.get("messages")
    size = len(item.prefix_hashes)
    if not isinstance(messages, list) or len(messages) <= size:
        return RewriteResult(
            body, False, reason=f"the request has fewer messages than the compacted prefix ({size})"
        )
    for index, (message, expected) in enumerate(zip(messages[:size], item.prefix_hashes, strict=True)):
        if message_hash(message) != expected:
            role = message.get("role", "?") if isinstance(message, dict) else "?"
            return RewriteResult(
                body, False,
                reason=f"the agent changed message {index} ({role}) inside the compacted prefix "
                f"of {size} messages, so the request no longer begins with it",
            )  # fmt: skip
    new_messages = [*item.replacement, *messages[size:]]
    problems = validation_problems(new_messages, item.dialect)
    # Refuse only problems the rewrite introduced; a body the client already sent that way stays as sent.
    if problems and len(problems) > len(validation_problems(messages, item.dialect)):
        return RewriteResult(body, False, reason="rewrite would be invalid: " + "; ".join(problems[:3]))
    return RewriteResult({**body, "messages": new_messages}, True, item.tokens_saved, compaction=item)


def folded_text(raw: bytes | None, count: int, messages: Sequence[Any]) -> tuple[str, bool]:
    """The first `count` messages as the client's bytes hold them, and whether that is exact.

    Exact: the UTF-8 text of `raw` from the first message's start to the end of message `count - 1`,
    separators included. Without raw bytes (or when they cannot be walked) the messages are re-serialised.
    """
    if raw is not None and count > 0:
        try:
            text = raw.decode("utf-8")
            locator = SpanLocator(text)
            start = locator.skip_ws(0)
            members = [m for m in locator.members(start) if m[0] == "messages"]
            if len(members) == 1 and text[members[0][2]] == "[":
                spans = locator.elements(members[0][2])
                if len(spans) >= count:
                    return text[spans[0][0] : spans[count - 1][1]], True
        except (UnicodeDecodeError, ValueError, IndexError, StopIteration, RecursionError):
            pass
    rendered = ",".join(json.dumps(m, ensure_ascii=False, separators=(",", ":")) for m in messages[:count])
    return rendered, False
