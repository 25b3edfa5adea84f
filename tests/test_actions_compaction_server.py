"""Proxy-mode compaction end to end against the real llama-server (tiny model: the summary is nonsense)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from support.llama import RunningServer, StartServer
from test_actions_compaction import BODIES, follow_up

from tui.core.actions.compaction import Compaction, CompactionError, CompactionStore, validation_problems
from tui.core.actions.compaction_summary import compact_async, summary_was_cut
from tui.core.tokens import ServerCounter

COUNT_PATHS = {"anthropic": "/v1/messages/count_tokens", "openai": "/v1/chat/completions/input_tokens"}
SEND_PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


def prompt_tokens(client: httpx.Client, dialect: str, body: dict[str, Any]) -> int:
    response = client.post(COUNT_PATHS[dialect], json=body)
    assert response.status_code == 200, response.text
    return int(response.json()["input_tokens"])


@pytest.mark.parametrize("dialect", ["anthropic", "openai"])
async def test_compaction_round_trip_on_real_server(
    shared_llama_server: RunningServer, dialect: str, tmp_path: Path
) -> None:
    body = BODIES[dialect](3)
    sent: list[str] = []

    async def record(request: httpx.Request) -> None:
        sent.append(f"{request.method} {request.url.path}")

    counter = ServerCounter(shared_llama_server.url)
    async with httpx.AsyncClient(timeout=120, event_hooks={"request": [record]}) as client:
        item = await compact_async(
            body,
            dialect,
            "sess-1",
            upstream=shared_llama_server.url,
            keep_turns=1,
            counter=counter,
            client=client,
            max_tokens=64,
        )
    assert sent == [f"POST {SEND_PATHS[dialect]}"]  # the summary request went to the model itself
    assert item.exact and item.counter == counter.name
    assert item.prefix_tokens > item.summary_tokens

    store = CompactionStore(tmp_path / "compactions.json")
    store.add(item)
    nxt = follow_up(body, dialect)
    result = store.rewrite(nxt, "sess-1")
    assert result.applied and validation_problems(result.body["messages"], dialect) == []

    with shared_llama_server.client() as client:
        before = prompt_tokens(client, dialect, nxt)
        after = prompt_tokens(client, dialect, result.body)
        assert after < before
        # The saving the store reports is close to what the server's tokenizer sees (template tokens aside).
        assert abs((before - after) - result.tokens_saved) < 0.2 * (before - after) + 40
        answer = client.post(SEND_PATHS[dialect], json={**result.body, "max_tokens": 4, "stream": False})
        assert answer.status_code == 200, answer.text


async def test_long_conversation_is_trimmed_to_the_server_context(shared_llama_server: RunningServer) -> None:
    body = BODIES["openai"](30)
    with shared_llama_server.client() as client:
        n_ctx = int(client.get("/props").json()["default_generation_settings"]["n_ctx"])
    with pytest.raises(CompactionError, match="exceeds the available context size"):
        await compact_async(
            body, "openai", "long", upstream=shared_llama_server.url, keep_turns=1, max_tokens=16
        )
    item = await compact_async(
        body,
        "openai",
        "long",
        upstream=shared_llama_server.url,
        keep_turns=1,
        max_tokens=16,
        context_tokens=n_ctx,
    )
    assert item.prefix_tokens > n_ctx > item.summary_tokens


async def test_a_summary_cut_at_its_budget_says_so(llama_server: StartServer, real_model: Path) -> None:
    """SmolLM2 cannot summarise two turns of work in 8 tokens: the compaction says the summary is cut."""
    server = llama_server(real_model, ctx_size=4096)
    body = BODIES["openai"](3)
    cut = await compact_async(body, "openai", "s", upstream=server.url, keep_turns=1, max_tokens=8)
    assert cut.summary_cut and cut.to_json()["summary_cut"]
    assert Compaction.from_json(cut.to_json()).summary_cut  # survives the state file


def test_summary_was_cut_reads_both_dialects() -> None:
    assert summary_was_cut("anthropic", '{"stop_reason": "max_tokens", "content": []}')
    assert not summary_was_cut("anthropic", '{"stop_reason": "end_turn", "content": []}')
    assert summary_was_cut("openai", '{"choices": [{"finish_reason": "length"}]}')
    assert not summary_was_cut("openai", '{"choices": [{"finish_reason": "stop"}]}')
    assert not summary_was_cut("openai", "not json")
