"""Where a team user's own switch and compaction state lives (next to the single-user files)."""

from __future__ import annotations

from pathlib import Path

from tui.core.config import UNKNOWN_USER, USER_NAME


def user_state_path(base: Path, user: str) -> Path:
    """The single-user file for user "", else the same file name under users/<user>/ beside it."""
    if not user:
        return base
    if not (USER_NAME.match(user) or user == UNKNOWN_USER):
        raise ValueError(f"not a user name: {user!r}")
    return base.parent / "users" / user / base.name
