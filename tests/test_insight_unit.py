"""The forecast's arithmetic and the status line's rendering (pure logic, no journal)."""

from __future__ import annotations

import pytest

from tui.core.insight.forecast import claude_compact_threshold, forecast
from tui.core.insight.gauge import Gauge, render


def test_forecast_uses_the_mean_growth_since_the_context_last_shrank() -> None:
    # 10k, 12k, 14k, then a compaction down to 5k, then 6k and 8k: growth since the drop is 1k and 2k.
    f = forecast([10_000, 12_000, 14_000, 5_000, 6_000, 8_000], n_ctx=20_000)
    assert f.per_turn == 1_500 and f.turns_seen == 2
    assert f.turns_to_full == 8  # (20,000 - 8,000) / 1,500
    assert f.phrases() == ["~8 turns until the slot is full"]


def test_forecast_for_claude_code_adds_turns_until_auto_compact() -> None:
    threshold = claude_compact_threshold(65_536)
    assert threshold == 65_536 - 20_000 - 13_000
    f = forecast([20_000, 23_000, 26_000], n_ctx=65_536, compact_at=threshold)
    assert f.turns_to_compact == 3 and f.turns_to_full == 14
    assert f.phrases()[1] == "~3 turns until auto-compact"


@pytest.mark.parametrize(
    ("prompts", "full"),
    [([], None), ([5_000], None), ([5_000, 5_000], None), ([5_000, 19_000, 25_000], 0)],
    ids=["empty", "one-turn", "no-growth", "past-full"],
)
def test_forecast_without_growth_says_nothing(prompts: list[int], full: int | None) -> None:
    assert forecast(prompts, n_ctx=20_000).turns_to_full == full


def test_small_windows_have_no_auto_compact_threshold() -> None:
    assert claude_compact_threshold(16_384) is None


def test_status_line_shows_tokens_window_reuse_mcp_and_forecast() -> None:
    gauge = Gauge(41_230, 65_536, 0.98, 0.12, forecast([35_000, 38_000, 41_230], 65_536, 32_536))
    assert render(gauge) == "ctx 41.2k/65.5k 63% | reuse 98% | MCP 12% | ~8 turns to full, ~0 to auto-compact"
    unknown = Gauge(900, None, None, None, forecast([900], None))
    assert render(unknown) == "ctx 900/?"
