"""Anatomy speed on a ~150 KB Claude-Code-sized request with tiktoken: cold vs warm (targets 250/20 ms).

Run: /work/venv/bin/python bench/anatomy_bench.py [--rounds N] [--json] [--server URL]
Cold = new token cache + new Analyzer; warm = the same request again through the same Analyzer.
Both are measured interleaved in one run; the one-time encoding load is reported separately.
With --server, the same is measured with exact counts from that llama-server's /tokenize (no target).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from builders import cc_request, cc_tools, exchange  # noqa: E402

from tui.core.anatomy.analyze import Analyzer  # noqa: E402
from tui.core.tokens import ServerCounter, TiktokenCounter, TokenCache, TokenCounter, _encoding  # noqa: E402

COLD_TARGET_MS = 250.0
WARM_TARGET_MS = 20.0


def claude_code_body() -> dict[str, object]:
    """~150 KB: ~27k-char system prompt, 25 built-ins + MCP tools with long descriptions, 8 turns."""
    body: dict[str, object] = cc_request(turns=8, images=1, prompt_words=4600, tools=cc_tools(desc_words=560))
    return body


def measure_rounds(
    make: Callable[[], TokenCounter], raw: bytes, rounds: int
) -> tuple[list[float], list[float]]:
    """Interleaved cold/warm timings in ms."""
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(rounds):
        analyzer = Analyzer(make())
        t0 = time.perf_counter()
        result = analyzer.analyze(exchange(raw))
        cold.append((time.perf_counter() - t0) * 1000)
        assert result.anatomy is not None, result.unparsed_reason
        t0 = time.perf_counter()
        analyzer.analyze(exchange(raw))
        warm.append((time.perf_counter() - t0) * 1000)
    return cold, warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--server", metavar="URL", help="also measure exact counting via this llama-server")
    args = parser.parse_args()
    body = claude_code_body()
    raw = json.dumps(body).encode()
    t0 = time.perf_counter()
    _encoding()
    load_ms = (time.perf_counter() - t0) * 1000
    cold, warm = measure_rounds(lambda: TiktokenCounter(TokenCache()), raw, args.rounds)
    anatomy = Analyzer(TiktokenCounter()).analyze(exchange(raw)).anatomy
    assert anatomy is not None
    report: dict[str, object] = {
        "request_bytes": len(raw),
        "tokens": anatomy.total_tokens,
        "parts": len(anatomy.parts),
        "encoding_load_ms": round(load_ms, 1),
        "cold_ms_median": round(statistics.median(cold), 1),
        "cold_ms_max": round(max(cold), 1),
        "warm_ms_median": round(statistics.median(warm), 2),
        "warm_ms_max": round(max(warm), 2),
        "cold_over_warm": round(statistics.median(cold) / statistics.median(warm), 1),
        "rounds": args.rounds,
    }
    if args.server:
        s_cold, s_warm = measure_rounds(lambda: ServerCounter(args.server), raw, args.rounds)
        report["server_cold_ms_median"] = round(statistics.median(s_cold), 1)
        report["server_warm_ms_median"] = round(statistics.median(s_warm), 2)
    ok = statistics.median(cold) <= COLD_TARGET_MS and statistics.median(warm) <= WARM_TARGET_MS
    report["targets_met"] = ok
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key:>18}: {value}")
        print(f"targets: cold <= {COLD_TARGET_MS} ms, warm <= {WARM_TARGET_MS} ms (medians)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
