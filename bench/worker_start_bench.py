"""Start cost of the analysis worker: a fresh interpreter imports the worker entry and unpickles a capture.

Runs this checkout and, with --baseline, another one, alternating A B B A; reports the median time and
whether aiohttp or the proxy got imported (neither should).

    python bench/worker_start_bench.py
    python bench/worker_start_bench.py --baseline /tmp/main --rounds 20
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Built by the checkout under test: its own Capture and RewriteNote, pickled as the pipe sends them.
MAKE_CAPTURE = (
    "import pickle, sys\n"
    "from tui.core.analysis.capture import Capture, RewriteNote\n"
    "try:\n"
    "    from tui.core.analysis.worker_process import WorkerConfig\n"
    "except ImportError:  # before the worker's loop had its own module\n"
    "    from tui.core.analysis.worker import WorkerConfig\n"
    "from tui.core.config import Settings\n"
    "capture = Capture('POST', '/v1/messages', [('content-type', 'application/json')], b'{}', 0.0)\n"
    "capture.rewrite = RewriteNote('anthropic', ('stabilize',), ('stabilize',))\n"
    "sys.stdout.write(pickle.dumps((WorkerConfig(Settings(), None), capture)).hex())\n"
)
START = (
    "import sys, time\n"
    "t = time.perf_counter()\n"
    "import pickle\n"
    "try:\n"
    "    from tui.core.analysis.worker_process import main\n"
    "except ImportError:\n"
    "    from tui.core.analysis.worker import _main\n"
    "pickle.loads(bytes.fromhex(sys.argv[1]))\n"
    "ms = (time.perf_counter() - t) * 1000\n"
    "bad = [m for m in sys.modules if m.split('.')[0] == 'aiohttp' or m.startswith('tui.core.proxy')]\n"
    "import json; print(json.dumps({'ms': ms, 'modules': len(sys.modules), 'bad': bad}))\n"
)


def run(tree: Path, code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tree, env=env, timeout=120
    )
    if out.returncode != 0:
        raise SystemExit(f"{tree}: {out.stderr[-2000:]}")
    return out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="another ctxbudget checkout to compare against")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    trees = {"this": REPO}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    blobs = {name: run(tree, MAKE_CAPTURE) for name, tree in trees.items()}
    results: dict[str, list[dict[str, object]]] = {name: [] for name in trees}
    for r in range(args.rounds):
        for name in list(trees) if r % 2 == 0 else list(reversed(trees)):
            results[name].append(json.loads(run(trees[name], START, blobs[name])))
    for name, rows in results.items():
        ms = statistics.median(float(str(row["ms"])) for row in rows)
        print(
            f"{name:<9} median {ms:6.1f} ms over {len(rows)} starts; {rows[0]['modules']} modules; "
            f"aiohttp or proxy imported: {rows[0]['bad'] or 'none'}"
        )


if __name__ == "__main__":
    main()
