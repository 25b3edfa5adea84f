"""The proxy's switches and run state, one object shared by the request rewriter and the control API."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from tui.core.actions.compaction import CompactionStore
from tui.core.actions.compaction_service import CompactionService
from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.config import Settings
from tui.core.control.tracker import RunTracker
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.poll.snapshots import ServerSnapshot
from tui.core.prom.metrics import ProxyMetrics
from tui.core.proxy.rewrite import RequestRewriter

log = logging.getLogger(__name__)


@dataclass
class ProxyControls:
    """MCP and transform switches, compaction, the rewriter built on them, the run tracker and metrics."""

    settings: Settings
    metrics: ProxyMetrics
    tracker: RunTracker
    mcp_store: McpSwitchStore
    transform_switches: TransformSwitchStore
    compaction: CompactionService | None = None
    rewriter: RequestRewriter | None = None

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        metrics: ProxyMetrics | None = None,
        mcp_store: McpSwitchStore | None = None,
        transform_switches: TransformSwitchStore | None = None,
        compaction_store: CompactionStore | None = None,
        rewrite: bool = True,
    ) -> ProxyControls:
        """The controls of one proxy; the switch stores default to the state files in the user data dir."""
        controls = cls(
            settings,
            metrics or ProxyMetrics(mcp_servers=settings.anatomy.mcp_servers),
            RunTracker(),
            mcp_store or McpSwitchStore(),
            transform_switches or TransformSwitchStore(settings.transforms.enabled),
        )
        if rewrite:
            controls.compaction = CompactionService(
                compaction_store or CompactionStore(),
                upstream=controls.upstream,
                api_key=settings.server.api_key,
            )
            controls.rewriter = RequestRewriter(
                settings.transforms,
                tuple(settings.anatomy.mcp_servers),
                controls.mcp_store,
                controls.transform_switches,
                controls.compaction,
            )
        return controls

    @property
    def upstream(self) -> str:
        """The upstream base URL, without a trailing slash."""
        return self.settings.proxy.upstream.rstrip("/")

    def observe_server(self, snapshot: ServerSnapshot) -> None:
        """Feed a server poller snapshot: server gauges, and the context size compaction aims at."""
        self.metrics.observe_server(snapshot)
        if self.compaction is not None and snapshot.n_ctx_slot > 0:
            self.compaction.context_tokens = snapshot.n_ctx_slot

    async def ensure_compaction_counter(self) -> None:
        """Give the compaction service a token counter (built off the loop: it may probe the server)."""
        if self.compaction is None or self.compaction.counter is not None:
            return
        from tui.core.tokens import make_counter

        s = self.settings
        try:
            self.compaction.counter = await asyncio.to_thread(
                make_counter, s.anatomy.counter, self.upstream, s.server.api_key
            )
        except Exception:
            log.exception("no token counter for compaction; its figures are estimates")
