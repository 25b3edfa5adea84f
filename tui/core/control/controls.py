"""The proxy's switches and run state, one object shared by the request rewriter and the control API."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from tui.core.actions.compaction import CompactionStore
from tui.core.actions.compaction_service import CompactionService
from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.config import UNKNOWN_USER, Settings
from tui.core.control.recent import RecentBodies
from tui.core.control.tracker import RunTracker
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.poll.snapshots import ServerSnapshot
from tui.core.prom.metrics import ProxyMetrics
from tui.core.proxy.session_hint import session_hint
from tui.core.team.gate import KeyGate
from tui.core.team.state_paths import user_state_path
from tui.core.transforms.pipeline import TransformPipeline

log = logging.getLogger(__name__)


@dataclass
class ProxyControls:
    """Who sent a request, MCP and transform switches, compaction, the run tracker and metrics.

    MCP switches and compaction are per user: `mcp_store` and `compaction` are user ""'s (the single
    user, and today's files); a team user's live in users/<name>/ beside them, made on first use.
    Transforms stay proxy-wide. `pipeline` is None when the proxy does not rewrite.
    """

    settings: Settings
    metrics: ProxyMetrics
    tracker: RunTracker
    mcp_store: McpSwitchStore
    transform_switches: TransformSwitchStore
    gate: KeyGate
    compaction: CompactionService | None = None
    pipeline: TransformPipeline | None = None
    recent: RecentBodies = field(default_factory=RecentBodies)
    # The latest model request as the client sent it, with its dialect (transform switch estimates).
    last_raw: tuple[bytes, str] | None = None
    _user_mcp: dict[str, McpSwitchStore] = field(default_factory=dict)
    _user_compaction: dict[str, CompactionService] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        metrics: ProxyMetrics | None = None,
        mcp_store: McpSwitchStore | None = None,
        transform_switches: TransformSwitchStore | None = None,
        compaction_store: CompactionStore | None = None,
        gate: KeyGate | None = None,
        rewrite: bool = True,
        compaction: bool = True,
    ) -> ProxyControls:
        """The controls of one proxy; the switch stores default to the state files in the user data dir."""
        gate = gate or KeyGate(settings.team, need_key=False)
        controls = cls(
            settings,
            metrics or ProxyMetrics(mcp_servers=settings.anatomy.mcp_servers, team_users=lambda: gate.users),
            RunTracker(),
            mcp_store or McpSwitchStore(),
            transform_switches or TransformSwitchStore(settings.transforms.enabled),
            gate,
        )
        if rewrite:
            try:
                controls.pipeline = TransformPipeline(settings.transforms)
            except ValueError:
                log.exception("[transforms] settings unusable: transforms stay off")
            if compaction:
                controls.compaction = CompactionService(
                    compaction_store or CompactionStore(),
                    upstream=controls.upstream,
                    api_key=settings.server.api_key,
                )
        return controls

    @property
    def upstream(self) -> str:
        """The upstream base URL, without a trailing slash."""
        return self.settings.proxy.upstream.rstrip("/")

    @property
    def rewriting(self) -> bool:
        """Whether requests go through the rewriter (transforms, MCP switches, compaction)."""
        return self.pipeline is not None or self.compaction is not None

    def known_user(self, user: str) -> bool:
        """Whether switches may be kept for this user: "" (single user), "unknown" or a team user."""
        return user in ("", UNKNOWN_USER) or user in self.gate.users

    def users(self) -> tuple[str, ...]:
        """Users with their own switch state: "" first, then team users and "unknown" in team mode."""
        if not self.gate.active:
            return ("",)
        return ("", *self.gate.users, UNKNOWN_USER)

    def mcp_store_for(self, user: str) -> McpSwitchStore:
        """The MCP switches of one user (user "": `mcp_store`)."""
        if not user:
            return self.mcp_store
        store = self._user_mcp.get(user)
        if store is None:
            store = McpSwitchStore(user_state_path(self.mcp_store.path, user))
            self._user_mcp[user] = store
        return store

    def mcp_off(self, user: str = "") -> frozenset[str]:
        """MCP servers switched off for one user's requests."""
        return self.mcp_store_for(user).off()

    def compaction_for(self, user: str) -> CompactionService | None:
        """One user's compaction service (None when this proxy does not compact)."""
        base = self.compaction
        if base is None or not user:
            return base
        service = self._user_compaction.get(user)
        if service is None:
            service = CompactionService(
                CompactionStore(user_state_path(base.store.path, user)),
                upstream=base.upstream,
                api_key=base.api_key,
                counter=base.counter,
                max_tokens=base.max_tokens,
                context_tokens=base.context_tokens,
            )
            self._user_compaction[user] = service
        return service

    def compaction_services(self) -> list[tuple[str, CompactionService]]:
        """Every compaction service made so far, user "" first."""
        if self.compaction is None:
            return []
        return [("", self.compaction), *sorted(self._user_compaction.items())]

    def enabled_transforms(self) -> tuple[str, ...]:
        """Transforms that run on the next request."""
        return self.transform_switches.enabled() if self.pipeline is not None else ()

    def replay_recent(self, user: str = "") -> None:
        """Let a user's compaction service see their recent bodies kept unparsed (before a compaction)."""
        service = self.compaction_for(user)
        if service is None:
            return
        for raw, dialect, session in self.recent.of(user):
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                service.observe(parsed, dialect, session or session_hint({}, parsed), raw)

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

    def observe_server(self, snapshot: ServerSnapshot) -> None:
        """Feed a server poller snapshot: server gauges, and the context size compaction aims at."""
        self.metrics.observe_server(snapshot)
        if snapshot.n_ctx_slot > 0:
            for _, service in self.compaction_services():
                service.context_tokens = snapshot.n_ctx_slot

    async def ensure_compaction_counter(self) -> None:
        """Give the compaction services a token counter (built off the loop: it may probe the server)."""
        if self.compaction is None or self.compaction.counter is not None:
            return
        from tui.core.tokens import make_counter

        s = self.settings
        try:
            counter = await asyncio.to_thread(
                make_counter, s.anatomy.counter, self.upstream, s.server.api_key
            )
        except Exception:
            log.exception("no token counter for compaction; its figures are estimates")
            return
        for _, service in self.compaction_services():
            service.counter = counter
