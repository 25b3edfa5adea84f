"""Who sent a request: the agent's key, hashed and looked up (one dict lookup; keys are never kept)."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

from tui.core.actions.state_files import file_signature
from tui.core.config import (
    UNKNOWN_USER,
    ConfigError,
    TeamSettings,
    read_team_file,
    serve_token_path,
    team_file_path,
)
from tui.core.team.keys import hash_key

log = logging.getLogger(__name__)

# Seconds between checks of team.toml and the serve token for changes (a removed user is locked out
# within this time without restarting the proxy).
RELOAD_EVERY_S = 1.0
# Headers that carry an agent's key: Anthropic x-api-key, and Authorization: Bearer (Anthropic
# ANTHROPIC_AUTH_TOKEN, OpenAI-compatible clients such as opencode).
KEY_HEADERS: tuple[str, ...] = ("x-api-key", "authorization")


def read_serve_token(path: Path | None = None) -> str | None:
    """The serve token, or None when none was generated yet."""
    try:
        token = (path or serve_token_path()).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def presented_keys(headers: Mapping[str, str]) -> list[str]:
    """The keys a request carries (x-api-key, then a Bearer token)."""
    keys: list[str] = []
    api_key = headers.get("x-api-key", "").strip()
    if api_key:
        keys.append(api_key)
    scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        keys.append(token.strip())
    return keys


def _signature(path: Path | None) -> tuple[int, int, int] | None:
    return file_signature(path) if path is not None else None


class KeyGate:
    """Names the user of each request; not `active` (single user on loopback): nothing is checked.

    The user is a configured name, "unknown" (a key that matches none, when keys are not required) or
    "" (single user: no team, or the serve token). None means reject: keys are required (require_user,
    or a proxy listening beyond loopback) and this one is unknown.
    """

    def __init__(
        self,
        team: TeamSettings,
        *,
        need_key: bool,
        team_file: Path | None = None,
        token_file: Path | None = None,
    ) -> None:
        self.need_key = need_key
        self.require = need_key or team.require_user
        self._team_file = team_file
        self._file_users: dict[str, str] = {}
        # Users of config.toml stay; team.toml's are re-read (team.users holds both as loaded at start).
        at_start = self._read_file() if team_file is not None else {}
        self._configured = {n: h for n, h in team.users.items() if at_start.get(n) != h}
        self._token_file = token_file
        self._signatures: tuple[object, object] = (None, None)
        self._checked_at = 0.0
        self._by_hash: dict[str, str] = {}
        self._load()

    @classmethod
    def for_proxy(cls, team: TeamSettings, *, need_key: bool) -> KeyGate:
        """The gate of a proxy: team.toml and the serve token in the config dir, re-read when they change."""
        return cls(team, need_key=need_key, team_file=team_file_path(), token_file=serve_token_path())

    @property
    def active(self) -> bool:
        """Whether requests are identified (and their keys kept from the upstream)."""
        return self.require or bool(self._by_hash)

    @property
    def users(self) -> tuple[str, ...]:
        """Configured user names (sorted)."""
        return tuple(sorted(set(self._by_hash.values()) - {""}))

    def has_keys(self) -> bool:
        """Whether any key is accepted at all (some user, or a serve token)."""
        self._maybe_reload()
        return bool(self._by_hash)

    def identify(self, headers: Mapping[str, str]) -> str | None:
        """The user of a request with these headers, or None to reject it."""
        self._maybe_reload()
        if not self.active:
            return ""
        for key in presented_keys(headers):
            user = self._by_hash.get(hash_key(key))
            if user is not None:
                return user
        return None if self.require else UNKNOWN_USER

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if now - self._checked_at < RELOAD_EVERY_S:
            return
        self._checked_at = now
        if (_signature(self._team_file), _signature(self._token_file)) != self._signatures:
            self._load()

    def _read_file(self) -> dict[str, str]:
        assert self._team_file is not None
        try:
            return read_team_file(self._team_file)
        except ConfigError as exc:  # keep the users last read: a half-edited file locks nobody out
            log.error("team users not reloaded: %s", exc)
            return self._file_users

    def _load(self) -> None:
        self._signatures = (_signature(self._team_file), _signature(self._token_file))
        if self._team_file is not None:
            self._file_users = self._read_file()
        by_hash = {digest: name for name, digest in {**self._configured, **self._file_users}.items()}
        token = read_serve_token(self._token_file) if self._token_file is not None else None
        if token is not None and self.need_key:
            by_hash.setdefault(hash_key(token), "")
        self._by_hash = by_hash
