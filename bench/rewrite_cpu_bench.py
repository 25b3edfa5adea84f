"""CPU per request of the rewrite hook (hot path) and the analysis worker, for two checkouts in one run.

Each round runs a child process per checkout that pushes the same requests through the real
RequestRewriter and CaptureProcessor (tiktoken counter, no journal), pickling each capture as the
worker pipe does; rounds alternate A B B A so drift cancels. Without --baseline only this checkout runs.

    python bench/rewrite_cpu_bench.py                          # this checkout, every preset
    python bench/rewrite_cpu_bench.py --baseline /tmp/main     # against another checkout (e.g. git archive)
    python bench/rewrite_cpu_bench.py --preset all --rounds 6  # one preset, more rounds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent

# Transform presets: which transforms run and which MCP servers are switched off.
PRESETS: dict[str, tuple[list[str], list[str]]] = {
    "default": (["stabilize"], []),  # Claude Code's billing line, rewritten on the raw bytes
    "all": (["stabilize", "trim_descriptions", "slim_results", "compress_prose"], []),
    "mcp": (["stabilize"], ["memory"]),  # an MCP server switched off: the parsed path
}
REPLY = (
    b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":1200,'
    b'"cache_read_input_tokens":30000,"output_tokens":1}}}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":40}}\n\n'
)


def bodies(n: int) -> list[bytes]:
    """One growing conversation: each request adds a turn, as an agent's requests do."""
    sys.path.insert(0, str(BENCH))
    from proxy_bench import claude_code_body

    base = json.loads(claude_code_body())
    out = []
    for i in range(n):
        body = json.loads(json.dumps(base))
        body["system"][0]["text"] = f"x-anthropic-billing-header: cc_version=2.1.197.h{i:04x}; cch={i:05d};"
        for turn in range(i):
            said = {"role": "assistant", "content": [{"type": "text", "text": f"step {turn}"}]}
            asked = {"role": "user", "content": [{"type": "text", "text": f"go on {turn}"}]}
            body["messages"] += [said, asked]
        out.append(json.dumps(body).encode())
    return out


def child(preset: str, requests: int, warmup: int) -> dict[str, float]:
    """Run in the checkout under test (its `tui` first on sys.path); CPU ms per request by phase."""
    import pickle

    from tui.core.actions.mcp_switch import McpSwitchStore
    from tui.core.analysis.capture import Capture
    from tui.core.analysis.sinks import CaptureProcessor
    from tui.core.anatomy.analyze import Analyzer
    from tui.core.config import AnatomySettings, Settings
    from tui.core.control.controls import ProxyControls
    from tui.core.control.transform_state import TransformSwitchStore
    from tui.core.proxy.rewrite import RequestRewriter
    from tui.core.tokens import TiktokenCounter

    enabled, off = PRESETS[preset]
    transforms = Settings().transforms.__class__(enabled=enabled)
    with tempfile.TemporaryDirectory() as tmp:
        mcp = McpSwitchStore(Path(tmp) / "mcp.json")
        for server in off:
            mcp.set_enabled(server, False)
        anatomy = AnatomySettings(mcp_servers=["filesystem", "memory"])
        settings = Settings(transforms=transforms, anatomy=anatomy)
        switches = TransformSwitchStore(enabled, Path(tmp) / "t.json")
        controls = ProxyControls.build(
            settings, mcp_store=mcp, transform_switches=switches, compaction=False
        )
        hook = RequestRewriter(controls)
        processor = CaptureProcessor(None, lambda: Analyzer(TiktokenCounter(), ("filesystem", "memory")))
        headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
        hot = worker = 0.0
        items = bodies(warmup + requests)
        for i, raw in enumerate(items):
            t0 = time.process_time()
            out, note = hook.process("POST", "/v1/messages?beta=true", headers, raw)
            capture = Capture("POST", "/v1/messages?beta=true", list(headers.items()), out, time.time())
            capture.rewrite = note
            capture.status = 200
            capture.response_headers = [("content-type", "text/event-stream")]
            capture.add_chunk(REPLY)
            blob = pickle.dumps(capture)
            t1 = time.process_time()
            record = processor.process(pickle.loads(blob))
            t2 = time.process_time()
            assert record.anatomy is not None, record.unparsed_reason
            if i >= warmup:
                hot += t1 - t0
                worker += t2 - t1
        saved = record.transform_saved_tokens
    return {"hot_ms": hot * 1000 / requests, "worker_ms": worker * 1000 / requests, "saved": saved or 0}


def run_child(tree: Path, preset: str, requests: int, warmup: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2]);"
        "from rewrite_cpu_bench import child;"
        "print(json.dumps(child(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tree), str(BENCH), preset, str(requests), str(warmup)],
        capture_output=True, text=True, env=env, cwd=tree, timeout=600,
    )
    if out.returncode != 0:
        raise SystemExit(f"child for {tree} failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="another ctxbudget checkout to compare against")
    parser.add_argument("--preset", choices=[*PRESETS, "every"], default="every")
    parser.add_argument("--rounds", type=int, default=4, help="A B B A rounds (each runs both trees)")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--json", metavar="PATH", help="write the numbers as JSON")
    args = parser.parse_args()
    trees = {"this": REPO}
    if args.baseline is not None:
        trees["baseline"] = args.baseline.resolve()
    presets = list(PRESETS) if args.preset == "every" else [args.preset]
    results: dict[str, dict[str, list[dict[str, float]]]] = {p: {t: [] for t in trees} for p in presets}
    for preset in presets:
        for r in range(args.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))
            for name in order:
                results[preset][name].append(run_child(trees[name], preset, args.requests, args.warmup))
    summary: dict[str, Any] = {}
    print(f"CPU ms per request, median of {args.rounds} rounds x {args.requests} requests (~150 KB body)")
    print(f"{'preset':<9}{'tree':<10}{'hot path':>10}{'worker':>10}{'total':>10}{'saved tok':>11}")
    for preset, by_tree in results.items():
        for name, runs in by_tree.items():
            hot = statistics.median(r["hot_ms"] for r in runs)
            worker = statistics.median(r["worker_ms"] for r in runs)
            saved = int(runs[-1]["saved"])
            summary.setdefault(preset, {})[name] = {"hot_ms": hot, "worker_ms": worker, "saved_tokens": saved}
            print(f"{preset:<9}{name:<10}{hot:>10.2f}{worker:>10.2f}{hot + worker:>10.2f}{saved:>11}")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
