"""A long prefill on the real SmolLM2 through the dashboard's own proxy: the row shows at once with
progress and an ETA from the server log, a client that gives up is explained, and the row keeps the
server's own prompt count."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.eventually import eventually
from support.llama import StartServer
from test_feed_live import live_settings

from tui.core.feed.feed import DashboardFeed
from tui.core.feed.flights import FlightProgress
from tui.core.feed.live import LiveDriver
from tui.core.feed.updates import FeedUpdate, RecordsUpdate, SlotsUpdate, SourceStatus
from tui.core.journal.reader import JournalReader
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.timeout(300)]

# ~1,900 tokens of SmolLM2's tokenizer; small batches make the server log progress every 64 tokens.
LONG_TEXT = "The parser reads one token, checks the table, and moves to the next state. " * 120
TASK_TOKENS = re.compile(r"new prompt, .*task\.n_tokens = (\d+)")


def long_body() -> dict[str, Any]:
    return {
        "model": "smollm2",
        "stream": True,
        "max_tokens": 4,
        "messages": [{"role": "user", "content": LONG_TEXT + "\nSummarize in one word."}],
    }


def proxy_up(update: FeedUpdate) -> bool:
    return isinstance(update, SourceStatus) and update.source == "proxy" and update.health == "ok"


def flights_of(updates: list[FeedUpdate]) -> list[FlightProgress]:
    return [f for u in updates if isinstance(u, SlotsUpdate) for f in u.flights]


async def test_a_long_prefill_shows_in_flight_then_explains_the_client_giving_up(
    llama_server: StartServer, real_model: Path, tmp_path: Path, free_port: int
) -> None:
    server = llama_server(real_model, ctx_size=4096, extra_args=("-b", "64", "-ub", "64"))
    settings = live_settings(server, tmp_path, free_port)
    driver = LiveDriver(settings)
    feed = DashboardFeed(driver)
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    proxy_url = f"http://127.0.0.1:{free_port}"
    try:
        await eventually(
            lambda: any(
                isinstance(u, SourceStatus) and u.source == "proxy" and u.health == "ok" for u in updates
            ),
            timeout=30,
            what="the dashboard's proxy listening",
        )
        async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
            request = client.build_request("POST", proxy_url + "/v1/chat/completions", json=long_body())
            response = await client.send(request, stream=True)
            sending = asyncio.create_task(response.aread())
            # The row is in the journal (and on screen) while the server is still processing the prompt.
            provisional: RequestRecord = await eventually(
                lambda: next(
                    (r for u in updates if isinstance(u, RecordsUpdate) for r in u.records if r.in_flight),
                    None,
                ),
                timeout=30,
                what="the in-flight row",
            )
            assert provisional.status == 0 and provisional.path == "/v1/chat/completions"
            assert provisional.model == "smollm2" and provisional.stream
            in_journal = JournalReader(settings.journal_path()).rows([provisional.id])
            assert [r.state for r in in_journal] == ["in_flight"]
            # Progress, rate and ETA from the server log while prefill runs.
            measured: FlightProgress = await eventually(
                lambda: next(
                    (
                        f
                        for f in flights_of(updates)
                        if f.record_id == provisional.id
                        and f.phase == "prompt"
                        and f.eta_s is not None
                        and f.progress is not None
                        and 0.2 < f.progress < 0.8
                    ),
                    None,
                ),
                timeout=120,
                what="prompt progress with an ETA",
            )
            assert measured.rate is not None and measured.rate > 0 and measured.prompt_tokens
            assert re.match(r"processing \d+% of [\d,]+ at [\d,]+ t/s, ETA \d+ (s|min)$", measured.text())
            assert not sending.done()
            # The client gives up mid-prefill (as Claude Code does after ~300 s of silence).
            sending.cancel()
            await response.aclose()
        final: RequestRecord = await eventually(
            lambda: next(
                (
                    r
                    for u in updates
                    if isinstance(u, RecordsUpdate) and u.replaced
                    for r in u.records
                    if r.id == provisional.id and not r.in_flight
                ),
                None,
            ),
            timeout=60,
            what="the final row replacing the in-flight one",
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert final.state == "done" and final.status in (0, 200)  # b11434 sends a stream's head at once
    error = final.error or ""
    assert (
        error.startswith("client closed the connection after ") and "before the first response byte" in error
    )
    assert "raise the agent's timeout" in error
    assert re.search(r"\[at \d+% of the prompt \([\d,]+ tokens\)", error), error
    # No usage in the response: the prompt size is the server's own count, the log's task.n_tokens.
    logged = [int(n) for n in TASK_TOKENS.findall(server.log_text())]
    assert logged and final.usage.prompt_tokens == logged[-1]
    # ... stored in the journal, so `requests` and `report` and a later dashboard show the same.
    stored = await eventually(
        lambda: next(
            (r for r in JournalReader(settings.journal_path()).rows([final.id]) if r.error == final.error),
            None,
        ),
        timeout=10,
        what="the explained row in the journal",
    )
    assert stored.usage.prompt_tokens == logged[-1]
    assert JournalReader(settings.journal_path()).count() == 1  # one row from forwarding to the end


async def test_an_upstream_error_keeps_its_text_and_the_server_count(
    llama_server: StartServer, real_model: Path, tmp_path: Path, free_port: int
) -> None:
    server = llama_server(real_model, ctx_size=512)
    settings = live_settings(server, tmp_path, free_port)
    driver = LiveDriver(settings)
    feed = DashboardFeed(driver)
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    try:
        await eventually(
            lambda: any(
                isinstance(u, SourceStatus) and u.source == "proxy" and u.health == "ok" for u in updates
            ),
            timeout=30,
            what="the dashboard's proxy listening",
        )
        body = {**long_body(), "stream": False}
        async with httpx.AsyncClient(timeout=120, trust_env=False) as client:
            answer = await client.post(f"http://127.0.0.1:{free_port}/v1/chat/completions", json=body)
        assert answer.status_code == 400
        message = answer.json()["error"]["message"]
        row = await eventually(
            lambda: next(
                (r for r in JournalReader(settings.journal_path()).latest(5) if not r.in_flight), None
            ),
            timeout=30,
            what="the final row",
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert row.status == 400 and row.error == f"upstream 400: {message}"
    assert "exceeds the available context size" in message
    counted = json.loads(answer.text)["error"].get("n_prompt_tokens")
    assert counted and row.usage.prompt_tokens == counted


async def test_a_proxy_killed_mid_request_leaves_an_interrupted_row(
    llama_server: StartServer, real_model: Path, tmp_path: Path
) -> None:
    from support.proxy_process import start_proxy

    server = llama_server(real_model, ctx_size=4096, extra_args=("-b", "64", "-ub", "64"))
    proxy = start_proxy(server.url, tmp_path, extra_args=("--quiet",))
    try:
        async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
            request = client.build_request("POST", proxy.url + "/v1/chat/completions", json=long_body())
            response = await client.send(request, stream=True)
            sending = asyncio.create_task(response.aread())
            row = await eventually(
                lambda: next(iter(JournalReader(proxy.journal_path).latest(1)), None),
                timeout=30,
                what="the in-flight row",
            )
            assert row.state == "in_flight"
            proxy.proc.kill()  # kill -9 mid-prefill
            proxy.proc.wait(10)
            with contextlib.suppress(httpx.HTTPError):
                await sending
    finally:
        proxy.stop()
    again = start_proxy(server.url, tmp_path, extra_args=("--quiet",))
    try:
        swept = await eventually(
            lambda: next(
                (r for r in JournalReader(proxy.journal_path).rows([row.id]) if r.state != "in_flight"), None
            ),
            timeout=30,
            what="the row marked interrupted",
        )
    finally:
        again.stop()
    assert swept.state == "interrupted"
    assert swept.error and swept.error.startswith(
        f"the proxy (pid {proxy.proc.pid}) stopped before the response"
    )
    assert JournalReader(proxy.journal_path).count() == 1


async def test_with_no_log_an_in_flight_row_tells_what_the_slots_poll_shows(
    llama_server: StartServer, real_model: Path, tmp_path: Path, free_port: int
) -> None:
    """No log followed (a server whose log is elsewhere): /slots still tells that the prompt is being
    processed, its size and the reused prefix, on which slot; the slot panel gets the same state."""
    server = llama_server(real_model, ctx_size=4096, extra_args=("-b", "64", "-ub", "64"))
    settings = live_settings(server, tmp_path, free_port, log_file="")
    feed = DashboardFeed(LiveDriver(settings))
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    proxy_url = f"http://127.0.0.1:{free_port}"
    try:
        await eventually(lambda: any(proxy_up(u) for u in updates), timeout=30, what="the proxy")
        async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
            response = await client.post(proxy_url + "/v1/chat/completions", json=long_body())
            assert response.status_code == 200
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    row = [r for r in JournalReader(settings.journal_path()).latest(5) if not r.in_flight][0]
    assert row.usage.prompt_tokens is not None
    seen = [f for f in flights_of(updates) if f.record_id == row.id]
    prompt = [f for f in seen if f.phase == "prompt" and f.done_tokens]
    assert prompt, [(f.phase, f.text()) for f in seen]
    # While the prompt runs /slots tells the tokens in the slot so far (64 per batch here), not the total.
    done = [f.done_tokens or 0 for f in prompt]
    assert done == sorted(done) and 0 < done[-1] <= row.usage.prompt_tokens, done
    assert all(f.slot == 0 and f.progress is None and f.eta_s is None for f in prompt)
    pattern = r"processing the prompt on slot 0: [\d,]+ tokens in( at [\d,]+ t/s)?"
    assert re.fullmatch(pattern, prompt[-1].text()), prompt[-1].text()
    assert any(f.rate for f in prompt), [f.text() for f in prompt]  # polls 0.5 s apart: a rate
    # The slot panel's state came from the same polls.
    states = [s for u in updates if isinstance(u, SlotsUpdate) for s in u.slots if s.phase == "prompt"]
    assert states and states[-1].slot == 0 and states[-1].prompt_tokens is None
