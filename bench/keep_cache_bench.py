"""What a restart costs the next request, with and without keeping the prompt cache.

    .venv/bin/python bench/keep_cache_bench.py [--model GGUF] [--turns N] [--ctx-size N] [--rounds N]

Starts llama-server through ServerController (default model: the tests' tiny dense GGUF, generated into a
temp dir), sends an agent-like conversation, then alternates `restart --keep-cache` and
`restart --no-keep-cache` and sends the same conversation again after each: prompt tokens reused
(timings.cache_n), prompt time, and the restart's wall time. State and slot files go to a temp dir.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

WIDTHS = (8, 10, 9, 9, 7, 11)
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def conversation(turns: int) -> list[dict[str, str]]:
    """A system prompt and `turns` user/assistant pairs of file lists (~300 tokens a pair)."""
    system = "You are a careful assistant. " + " ".join(
        f"rule{i} keeps item{i % 37} in order." for i in range(140)
    )
    messages = [{"role": "system", "content": system}]
    for i in range(turns):
        messages.append(
            {"role": "user", "content": f"step {i}: " + " ".join(f"f{i}_{j}.py" for j in range(40))}
        )
        messages.append({"role": "assistant", "content": f"done step {i}: " + "ok " * 30})
    messages.append({"role": "user", "content": "what is next?"})
    return messages


def ask(url: str, messages: list[dict[str, str]]) -> dict[str, Any]:
    body = {"messages": messages, "max_tokens": 4, "temperature": 0, "cache_prompt": True}
    response = httpx.post(url + "/v1/chat/completions", json=body, timeout=600)
    response.raise_for_status()
    timings: dict[str, Any] = response.json()["timings"]
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="GGUF to serve (default: generated tiny dense model)")
    parser.add_argument("--turns", type=int, default=6, help="conversation pairs (6 ~ 2k tokens)")
    parser.add_argument("--ctx-size", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=2, help="keep/drop pairs, interleaved")
    parser.add_argument("--extra", nargs="*", default=["-t", "2"], help="extra llama-server args")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="keepcache-bench-") as tmp:
        os.environ["CTXBUDGET_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["CTXBUDGET_CACHE_DIR"] = str(Path(tmp) / "cache")
        from support.llama import free_port
        from support.tiny_models import write_dense_model

        from tui.core.actions.server_control import ServerController
        from tui.core.config import ServerSettings, Settings
        from tui.core.llama_binary import find_llama_server

        model = Path(args.model) if args.model else write_dense_model(Path(tmp) / "tiny.gguf")
        port = free_port()
        server = ServerSettings(
            url=f"http://127.0.0.1:{port}",
            model=str(model),
            ctx_size=args.ctx_size,
            parallel=1,
            log_file=str(Path(tmp) / "server.log"),
            binary=str(find_llama_server(build=False)),
            extra_args=list(args.extra),
        )
        controller = ServerController(dataclasses.replace(Settings(), server=server), health_timeout=600)
        messages = conversation(args.turns)
        try:
            assert controller.start(force=True).phase == "up"
            cold = ask(controller.url, messages)
            first = f"{cold['prompt_n']:,} prompt tokens in {cold['prompt_ms']:.1f} ms"
            print(f"model {model.name}; first request: {first}")
            head = ("restart", "wall s", "restored", "cache_n", "prompt_n", "reuse", "prompt ms")
            print(f"{head[0]:<16}" + "".join(f"{h:>{w}}" for h, w in zip(head[1:], WIDTHS, strict=True)))
            for _ in range(args.rounds):
                for keep in (True, False):
                    started = time.perf_counter()
                    state = controller.restart(force=True, keep_cache=keep)
                    wall = time.perf_counter() - started
                    restored = state.message.split("restored ")[1].split(" tokens")[0] if keep else "-"
                    t = ask(controller.url, messages)
                    cached, fresh = int(t.get("cache_n", 0)), int(t["prompt_n"])
                    name = "--keep-cache" if keep else "--no-keep-cache"
                    print(
                        f"{name:<16}{wall:>8.2f}{restored:>10}{cached:>9,}{fresh:>9,}"
                        f"{cached / (cached + fresh):>7.0%}{t['prompt_ms']:>11.1f}"
                    )
        finally:
            controller.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
