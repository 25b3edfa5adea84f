"""The proxy's control state as the dashboard sees it: a frozen snapshot read through the control API."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tui.core.control.client import ControlClient, ControlError

# The transform modules load with the first control answer, not with the dashboard.
if TYPE_CHECKING:
    from tui.core.transforms.settings import TransformSettings


@dataclass(frozen=True)
class TransformRow:
    """One transform: on/off now and the tokens it saved in this proxy run."""

    name: str
    enabled: bool
    saved_tokens: int


@dataclass(frozen=True)
class CompactionRow:
    """One active proxy-side compaction."""

    session_id: str
    tokens_saved: int
    keep_turns: int
    status: str = ""  # waiting | applied | not applying
    detail: str = ""
    focus: str = ""  # what the summary was asked to keep
    folded_messages: int = 0  # messages the summary replaced (kept exactly; undo sends them again)


@dataclass(frozen=True)
class ControlSnapshot:
    """What the proxy's control API answered (or that it did not), with the time of the answer."""

    answers: bool
    address: str
    error: str = ""
    mcp_off: frozenset[str] = frozenset()
    mcp_saved_tokens: int = 0
    never_called: tuple[str, ...] = ()
    transforms: tuple[TransformRow, ...] = ()
    transform_saved_tokens: int = 0
    compactions: tuple[CompactionRow, ...] = ()
    compaction_saved_tokens: int = 0
    requests_seen: int = 0
    ts: float = field(default_factory=time.time)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def snapshot_from_state(state: dict[str, Any], address: str) -> ControlSnapshot:
    """Parse GET /_ctxbudget/state; unknown or missing fields read as empty."""
    from tui.core.transforms.registry import TRANSFORM_ORDER

    mcp = state.get("mcp") or {}
    transforms = state.get("transforms") or {}
    compactions = state.get("compactions") or {}
    rows = {
        str(t.get("name")): TransformRow(
            str(t.get("name")), bool(t.get("enabled")), _int(t.get("saved_tokens"))
        )
        for t in transforms.get("available") or []
        if isinstance(t, dict)
    }
    return ControlSnapshot(
        answers=True,
        address=address,
        mcp_off=frozenset(
            str(s.get("server"))
            for s in mcp.get("servers") or []
            if isinstance(s, dict) and not s.get("enabled")
        ),
        mcp_saved_tokens=_int(mcp.get("saved_tokens")),
        never_called=tuple(
            str(c.get("server")) for c in mcp.get("never_called") or [] if isinstance(c, dict)
        ),
        transforms=tuple(rows.get(name, TransformRow(name, False, 0)) for name in TRANSFORM_ORDER),
        transform_saved_tokens=_int(transforms.get("saved_tokens")),
        compactions=tuple(
            CompactionRow(
                str(c.get("session_id")), _int(c.get("tokens_saved")), _int(c.get("keep_turns")),
                str(c.get("status") or ""), str(c.get("detail") or ""), str(c.get("focus") or ""),
                _int(c.get("folded_messages")),
            )  # fmt: skip
            for c in compactions.get("active") or []
            if isinstance(c, dict)
        ),
        compaction_saved_tokens=_int(compactions.get("saved_tokens")),
        requests_seen=_int(state.get("requests_seen")),
    )


def fetch_control(client: ControlClient, user: str | None = None) -> ControlSnapshot:
    """Ask the proxy for its state, MCP switches of `user` (team server) (blocking: call it off the loop)."""
    address = client.base_url.removeprefix("http://")
    try:
        return snapshot_from_state(client.state(user), address)
    except ControlError as exc:
        return ControlSnapshot(answers=False, address=address, error=str(exc))


def switch_prefix_note(
    body: bytes | None, dialect: str, settings: TransformSettings, before: Sequence[str], after: Sequence[str]
) -> str:
    """What switching transforms does to the conversation's cached prefix, judged on a stored request body."""
    from tui.core.transforms.model import DIALECTS
    from tui.core.transforms.pipeline import TransformPipeline, changes_prefix

    if not body or dialect not in DIALECTS:
        return ""
    try:
        parsed = json.loads(body)
        pipeline = TransformPipeline(settings)
        old, _ = pipeline.run(parsed, dialect, list(before))
        new, _ = pipeline.run(parsed, dialect, list(after))
    except (ValueError, TypeError):
        return ""
    change = changes_prefix(old, new)
    if change is None:
        return "The latest request's prompt stays the same: nothing is re-processed."
    if not change.reprocesses:
        return f"The change starts in the latest turn ({change.where}): the cached prefix stays usable."
    return (
        f"This changes the prompt prefix of the ongoing conversation at {change.where}: llama-server "
        f"re-processes it once from there (the first {change.unchanged_chars:,} characters stay cached)."
    )
