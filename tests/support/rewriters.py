"""A RequestRewriter over its own ProxyControls, as the unit tests of the rewrite hook build it."""

from __future__ import annotations

from collections.abc import Sequence

from tui.core.actions.compaction import CompactionStore
from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.config import AnatomySettings, Settings
from tui.core.control.controls import ProxyControls
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.proxy.rewrite import RequestRewriter
from tui.core.transforms.settings import TransformSettings


def make_rewriter(
    transforms: TransformSettings,
    known_servers: Sequence[str],
    mcp: McpSwitchStore,
    switches: TransformSwitchStore,
    compaction_store: CompactionStore | None = None,
) -> RequestRewriter:
    """The rewriter with these switch stores; compaction only when a store is given."""
    settings = Settings(transforms=transforms, anatomy=AnatomySettings(mcp_servers=list(known_servers)))
    controls = ProxyControls.build(
        settings,
        mcp_store=mcp,
        transform_switches=switches,
        compaction_store=compaction_store,
        compaction=compaction_store is not None,
    )
    return RequestRewriter(controls)
