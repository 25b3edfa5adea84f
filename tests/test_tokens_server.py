"""Exact counting through a real llama-server's /tokenize, and consistent fallback to tiktoken."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.llama import RunningServer, StartServer, start_llama_server

from tui.core.tokens import AutoCounter, CounterError, ServerCounter, TiktokenCounter, make_counter, measure

TEXTS = [
    "You are an interactive CLI tool that helps users with software engineering tasks.",
    '{"name":"Bash","description":"Run a command","input_schema":{"type":"object"}}',
    "ünïcödé ✓ 🚀 — and <|im_start|> as plain text",
    "x" * 5000,
]


def server_tokens(server: RunningServer, text: str) -> int:
    with server.client() as client:
        reply = client.post("/tokenize", json={"content": text, "add_special": False})
    return len(reply.json()["tokens"])


@pytest.mark.llama
def test_server_counter_equals_tokenize(shared_llama_server: RunningServer) -> None:
    counter = ServerCounter(shared_llama_server.url)
    try:
        counts = measure(counter, TEXTS * 3)
        assert counts.counter == "llama-server" and counts.exact is True
        assert counts.values == [server_tokens(shared_llama_server, t) for t in TEXTS] * 3
        assert counter.cache.stored == len(TEXTS)  # repeats come from the cache
    finally:
        counter.close()


@pytest.mark.llama
def test_api_key_is_sent(llama_server: StartServer) -> None:
    server = llama_server(api_key="sekrit")
    assert measure(make_counter("server", server.url, "sekrit"), ["hello"]).counter == "llama-server"
    with pytest.raises(CounterError):
        make_counter("server", server.url, "wrong").count_many(["hello"])


@pytest.mark.llama
def test_auto_falls_back_when_server_stops_and_returns(
    llama_server_bin: Path, tiny_model: Path, tmp_path: Path
) -> None:
    server = start_llama_server(llama_server_bin, tiny_model, tmp_path / "a")
    auto = AutoCounter(ServerCounter(server.url), TiktokenCounter(), retry_after=0.0)
    try:
        exact = measure(auto, TEXTS)
        assert exact.counter == "llama-server" and exact.exact is True
        server.stop()
        # exact counts still in the cache are fine; one uncounted text makes the whole batch tiktoken
        assert measure(auto, TEXTS).values == exact.values
        down = measure(auto, [*TEXTS, "a text not seen before"])
        assert down.counter == "tiktoken-cl100k" and down.exact is False
        assert down.values == TiktokenCounter().count_many([*TEXTS, "a text not seen before"])
        assert auto.last_error is not None
        server = start_llama_server(llama_server_bin, tiny_model, tmp_path / "b", port=server.port)
        back = measure(auto, [*TEXTS, "a text not seen before"])
        assert back.counter == "llama-server" and back.values[:4] == exact.values
    finally:
        server.stop()
        auto.close()


class _FlakyTokenizer(BaseHTTPRequestHandler):
    """Answers /v1/models, then /tokenize for the first `budget` calls, then 500."""

    budget = 2
    calls = 0
    lock = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return

    def _reply(self, code: int, data: object) -> None:
        raw = json.dumps(data).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802
        self._reply(200, {"data": [{"id": "flaky"}]})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length", "0"))
        content = json.loads(self.rfile.read(length))["content"]
        with self.lock:
            type(self).calls += 1
            ok = type(self).calls <= self.budget
        if ok:
            self._reply(200, {"tokens": list(range(len(content)))})
        else:
            self._reply(500, {"error": "boom"})


@pytest.fixture
def flaky_server() -> Iterator[str]:
    _FlakyTokenizer.calls = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyTokenizer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_failure_mid_batch_gives_one_counter_for_the_whole_batch(flaky_server: str) -> None:
    auto = AutoCounter(ServerCounter(flaky_server, concurrency=2), TiktokenCounter(), retry_after=60.0)
    texts = [f"text number {i}" for i in range(8)]
    counts = measure(auto, texts)
    assert counts.counter == "tiktoken-cl100k"
    assert counts.values == TiktokenCounter().count_many(texts)
    assert "500" in (auto.last_error or "")
    # within retry_after the server is not asked again
    calls = _FlakyTokenizer.calls
    assert measure(auto, ["another"]).counter == "tiktoken-cl100k"
    assert _FlakyTokenizer.calls == calls
