"""ServerPoller against real llama-server processes: states, slots, metrics deltas, auth and sleep."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
from support.llama import RunningServer, StartServer, free_port, start_llama_server

from tui.core.gguf import read_gguf_info
from tui.core.poll.server_poller import UNAUTHORIZED, ServerPoller
from tui.core.poll.snapshots import ServerSnapshot

pytestmark = pytest.mark.llama


def chat(server: RunningServer, text: str, max_tokens: int = 16) -> dict[str, object]:
    """One non-streaming chat request; returns the response JSON."""
    with server.client() as client:
        response = client.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens},
        )
    response.raise_for_status()
    body: dict[str, object] = response.json()
    return body


async def poll(url: str, api_key: str = "") -> ServerSnapshot:
    poller = ServerPoller(url, api_key)
    try:
        return await poller.poll_once()
    finally:
        await poller.aclose()


async def test_down_then_up_on_the_same_port(
    llama_server_bin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    port = free_port()
    poller = ServerPoller(f"http://127.0.0.1:{port}", interval=0.5, max_backoff=3.0)
    try:
        down = await poller.poll_once()
        assert down.state == "down" and "cannot connect" in down.error
        delays = [poller.next_delay(down)]
        for _ in range(4):
            delays.append(poller.next_delay(await poller.poll_once()))
        assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]  # exponential backoff, capped
        server = await asyncio.to_thread(
            start_llama_server, llama_server_bin, tiny_model, tmp_path, port=port
        )
        try:
            up = await poller.poll_once()
        finally:
            server.stop()
        assert up.state == "up" and up.error == ""
        assert poller.next_delay(up) == 0.5
        assert up.n_ctx_train == read_gguf_info(tiny_model).n_ctx_train
        assert up.last_ok_ts == up.ts
        after = await poller.poll_once()
        assert after.state == "down" and after.last_ok_ts == up.ts
    finally:
        await poller.aclose()


async def test_up_snapshot_matches_props_and_slots(llama_server: StartServer) -> None:
    server = llama_server(ctx_size=8192, parallel=2)
    snap = await poll(server.url)
    with server.client() as client:
        props = client.get("/props").json()
        slots = client.get("/slots").json()
    assert snap.state == "up"
    assert snap.n_slots == props["total_slots"] == len(snap.slots) == 2
    assert snap.n_ctx_slot == props["default_generation_settings"]["n_ctx"] == 4096
    assert snap.model == props["model_alias"] and snap.build == props["build_info"]
    assert [s.n_ctx for s in snap.slots] == [s["n_ctx"] for s in slots]
    assert snap.metrics is not None and snap.notes == ()


async def test_slot_fill_and_metrics_deltas_after_a_request(llama_server: StartServer) -> None:
    server = llama_server(ctx_size=4096, parallel=1)
    poller = ServerPoller(server.url)
    try:
        before = await poller.poll_once()
        body = await asyncio.to_thread(chat, server, "Count the tokens in this sentence, please.", 24)
        after = await poller.poll_once()
    finally:
        await poller.aclose()
    timings = body["timings"]
    assert isinstance(timings, dict)
    with server.client() as client:
        raw = client.get("/slots").json()[0]
    slot = after.slots[0]
    assert slot.n_prompt_tokens == raw["n_prompt_tokens"] > 0
    assert slot.fill == pytest.approx(raw["n_prompt_tokens"] / raw["n_ctx"])
    assert not slot.is_processing and slot.id_task == raw["id_task"]
    assert before.metrics is not None and after.metrics is not None
    assert after.metrics.prompt_tokens_total - before.metrics.prompt_tokens_total == timings["prompt_n"]
    assert (
        after.metrics.tokens_predicted_total - before.metrics.tokens_predicted_total == timings["predicted_n"]
    )
    assert after.metrics.prompt_tokens_delta == timings["prompt_n"]
    assert after.metrics.predicted_tokens_per_s is not None and after.metrics.predicted_tokens_per_s > 0
    assert after.metrics.prompt_tokens_per_s is not None and after.metrics.prompt_tokens_per_s > 0


async def test_live_decode_rate_while_generating(llama_server: StartServer) -> None:
    server = llama_server(ctx_size=16384, parallel=1, n_predict=12000)
    done = threading.Event()

    def generate() -> None:
        with server.client(timeout=120) as client:
            client.post("/completion", json={"prompt": "hello", "n_predict": 12000, "ignore_eos": True})
        done.set()

    worker = threading.Thread(target=generate)
    worker.start()
    poller = ServerPoller(server.url)
    try:
        busy: list[ServerSnapshot] = []
        deadline = time.monotonic() + 60
        while len(busy) < 3 and not done.is_set() and time.monotonic() < deadline:
            snap = await poller.poll_once()
            if snap.slots and snap.slots[0].is_processing:
                busy.append(snap)
            await asyncio.sleep(0.2)
    finally:
        await poller.aclose()
        worker.join(timeout=120)
    assert len(busy) >= 2, "the generation finished before two polls saw it"
    decoded = [s.slots[0].n_decoded for s in busy]
    assert decoded == sorted(decoded) and decoded[-1] > decoded[0]
    rates = [s.slots[0].decode_rate for s in busy[1:]]
    assert all(r is not None and r > 0 for r in rates)
    assert busy[-1].decode_rate == busy[-1].slots[0].decode_rate


async def test_api_key(llama_server: StartServer) -> None:
    server = llama_server(api_key="sekrit-key")
    rejected = await poll(server.url)
    assert rejected.state == "up" and rejected.error == UNAUTHORIZED
    assert "sekrit" not in repr(rejected)
    accepted = await poll(server.url, "sekrit-key")
    assert accepted.state == "up" and accepted.error == "" and accepted.slots


async def test_sleeping_server_is_not_woken(llama_server: StartServer) -> None:
    server = llama_server(extra_args=("--sleep-idle-seconds", "1"))
    await asyncio.to_thread(chat, server, "wake up and answer", 8)
    poller = ServerPoller(server.url, interval=0.3)
    try:
        states: list[str] = []
        deadline = time.monotonic() + 30
        while "sleeping" not in states and time.monotonic() < deadline:
            states.append((await poller.poll_once()).state)
            await asyncio.sleep(0.3)
        assert "sleeping" in states, f"server never slept while polled: {states}"
        server.wait_for_log("entering sleeping state")
        for _ in range(8):  # keep polling for a few seconds: /slots must not be requested
            snap = await poller.poll_once()
            assert snap.state == "sleeping"
            assert all(not s.is_processing and s.n_prompt_tokens == 0 for s in snap.slots)
            await asyncio.sleep(0.3)
    finally:
        await poller.aclose()
    assert "exiting sleeping state" not in server.log_text()


async def test_slots_disabled_is_noted(llama_server: StartServer) -> None:
    server = llama_server(extra_args=("--no-slots",))
    snap = await poll(server.url)
    assert snap.state == "up"
    assert any("slots endpoint disabled" in n for n in snap.notes)
    assert snap.slots == () and snap.n_ctx_slot > 0


async def test_run_loop_and_bounded_history(llama_server: StartServer) -> None:
    server = llama_server()
    poller = ServerPoller(server.url, interval=0.05, history=3)
    seen: list[ServerSnapshot] = []

    async def collect(snap: ServerSnapshot) -> None:
        seen.append(snap)
        if len(seen) == 5:
            poller.stop()

    try:
        await asyncio.wait_for(poller.run(collect), timeout=30)
    finally:
        await poller.aclose()
    assert len(seen) == 5 and all(s.state == "up" for s in seen)
    assert list(poller.history) == seen[-3:]
    assert [s.ts for s in seen] == sorted(s.ts for s in seen)


async def test_loading_and_odd_bodies_with_a_fake_transport() -> None:
    """Pure logic: 503 from /health is 'loading'; malformed JSON bodies do not crash the poller."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(503, json={"error": {"message": "Loading model", "code": 503}})
        return httpx.Response(500)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    poller = ServerPoller("http://fake", client=client)
    snap = await poller.poll_once()
    assert snap.state == "loading" and snap.error == "loading model"
    assert poller.next_delay(snap) == poller.interval

    def odd(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/slots":
            return httpx.Response(
                200,
                json=[
                    {
                        "id": 0,
                        "n_ctx": 100,
                        "is_processing": True,
                        "next_token": {"n_decoded": 5},
                        "n_prompt_tokens": 40,
                    }
                ],
            )
        if request.url.path == "/props":
            return httpx.Response(200, content=b"not json")
        if request.url.path == "/metrics":
            return httpx.Response(501)
        return httpx.Response(200, json={})

    poller = ServerPoller("http://fake", client=httpx.AsyncClient(transport=httpx.MockTransport(odd)))
    snap = await poller.poll_once()
    assert snap.state == "up"
    assert snap.slots[0].n_decoded == 5 and snap.slots[0].fill == 0.4  # next_token as an object
    assert snap.n_ctx_slot == 100 and snap.metrics is None
    assert any("--metrics" in n for n in snap.notes)
    await client.aclose()


async def test_async_iteration_and_poke() -> None:
    """Pure logic: `async for` yields one snapshot per poll; poke() skips the wait."""
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(503)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    poller = ServerPoller("http://fake", client=client, interval=60.0)
    started = time.monotonic()
    seen = []
    async for snap in poller:
        seen.append(snap)
        if len(seen) == 3:
            poller.stop()
        else:
            poller.poke()
    await client.aclose()
    assert [s.state for s in seen] == ["loading"] * 3
    assert time.monotonic() - started < 10  # poke() cut the 60 s interval short
    assert paths == ["/health"] * 3
