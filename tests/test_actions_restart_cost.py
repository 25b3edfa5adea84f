"""The restart dialog's cost line, from a real SmolLM2 server's slots and metrics after a real request."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.llama import StartServer

from tui.core.actions.restart_cost import cached_tokens, measured_prompt_speed, restart_cost_note
from tui.core.poll.server_poller import ServerPoller
from tui.core.poll.snapshots import ServerSnapshot


@pytest.mark.llama
async def test_restart_note_states_the_cache_it_throws_away(
    llama_server: StartServer, real_model: Path
) -> None:
    server = llama_server(real_model, ctx_size=2048)
    poller = ServerPoller(server.url)
    try:
        empty = await poller.poll_once()
        assert restart_cost_note(empty) == "cache: empty, nothing to re-process"
        with server.client() as client:
            answer = client.post("/v1/chat/completions", json={
                "messages": [{"role": "user", "content": "Name three colours of the rainbow."}],
                "max_tokens": 8,
            })
        assert answer.status_code == 200, answer.text
        prompt = answer.json()["usage"]["prompt_tokens"]
        snap = await poller.poll_once()
    finally:
        await poller.aclose()
    held = cached_tokens(snap)
    assert held is not None and held >= prompt  # the prompt plus what was generated stays in the slot
    speed = measured_prompt_speed(snap)
    assert snap.metrics is not None and speed == pytest.approx(
        snap.metrics.prompt_tokens_total / snap.metrics.prompt_seconds_total
    )
    note = restart_cost_note(snap)
    assert note.startswith(f"keeps ~{held:,} cached tokens (1 slot) when it can; otherwise ~")
    assert note.endswith(f"to process them again at the measured {speed:,.0f} t/s")


def test_without_slots_or_speed_the_note_says_what_is_unknown() -> None:
    assert restart_cost_note(None) == "cache: unknown (no /slots answer from the server yet)"
    from tui.core.poll.snapshots import SlotSnapshot

    slot = SlotSnapshot(0, 4096, False, n_prompt_tokens=30_000)
    snap = ServerSnapshot(ts=0.0, state="up", url="u", slots=(slot,))
    unmeasured = (
        "keeps ~30,000 cached tokens (1 slot) when it can; otherwise all are processed again "
        "(prompt speed not measured yet)"
    )
    assert restart_cost_note(snap) == unmeasured
    note = restart_cost_note(snap, [40.0, 36.0, 30.0])  # the median of recent requests: 36 t/s
    assert note.endswith("~14 min to process them again at the measured 36 t/s")
