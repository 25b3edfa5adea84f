"""What the [otel] export costs the analysis worker: CPU per span, spans per second end to end, import time.

    python bench/otel_bench.py                 # 2,000 spans to a throwaway OTLP/HTTP receiver on loopback
    python bench/otel_bench.py --spans 10000

The receiver is a minimal aiohttp app that answers 200 to POST /v1/traces (it does not decode the
protobuf), so the numbers are the exporter's side: building and queueing spans on the worker's thread
(what delays a journal row's acknowledgement) and encoding and sending them on the SDK's thread.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tui.core.anatomy.model import Anatomy  # noqa: E402
from tui.core.config import OtelSettings  # noqa: E402
from tui.core.otel import start_span_export  # noqa: E402
from tui.core.records import CacheBreak, RequestRecord, Usage  # noqa: E402


def row(i: int) -> RequestRecord:
    """A Claude-Code-sized model request row (all categories, three MCP servers, a cache break)."""
    categories = {"system": 9000, "tools": 12000, "mcp_tools": 8000, "reminders": 400, "history": 30000,
                  "tool_results": 20000, "latest_user": 200, "template_overhead": 900}
    anatomy = Anatomy("anthropic", "server", True, categories,
                      mcp_servers={s: {"tokens": 2500, "tools": 12} for s in ("github", "fs", "jira")})
    return RequestRecord(
        id=i, ts=time.time(), method="POST", path="/v1/messages", status=200, session_id="bench",
        kind="main", model="qwen3-coder-30b", dialect="anthropic", stream=True, ttfb_ms=300.0,
        total_ms=4000.0, anatomy=anatomy,
        usage=Usage(prompt_tokens=80500, cached_tokens=79000, output_tokens=350, stop_reason="end_turn"),
        cache_break=CacheBreak("messages[12]", "message 12 edited", 41000, 40800),
    )


def serve_receiver(ready: threading.Event, port_box: list[int], stop: threading.Event) -> None:
    """A loopback OTLP/HTTP endpoint that accepts every batch."""
    from aiohttp import web

    async def main() -> None:
        async def traces(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(body=b"", content_type="application/x-protobuf")

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/traces", traces)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_box.append(runner.addresses[0][1])
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    asyncio.run(main())


def import_ms() -> float:
    """Wall time of importing the exporter (the SDK with it) in a fresh interpreter."""
    code = (
        "import time; t = time.perf_counter(); import tui.core.otel.exporter; "
        "print(time.perf_counter() - t)"
    )
    root = str(Path(__file__).resolve().parent.parent)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    return float(out.stdout.strip()) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2000)
    args = parser.parse_args()
    ready, stop, port_box = threading.Event(), threading.Event(), list[int]()
    receiver = threading.Thread(target=serve_receiver, args=(ready, port_box, stop), daemon=True)
    receiver.start()
    ready.wait(10)
    rows = [row(i) for i in range(1, args.spans + 1)]
    settings = OtelSettings(endpoint=f"http://127.0.0.1:{port_box[0]}")
    spans = start_span_export(settings, upstream="http://127.0.0.1:8080")
    assert spans is not None
    wall, cpu = time.perf_counter(), time.thread_time()
    for record in rows:
        spans.export(record)
    cpu_per_span = (time.thread_time() - cpu) / len(rows)
    spans.processor.force_flush()
    elapsed = time.perf_counter() - wall
    spans.shutdown(5.0)
    stop.set()
    status = spans.status()
    print(f"spans: {len(rows)} (exported {status['exported']}, failed {status['failed']}, "
          f"dropped {status['dropped']})")
    print(f"worker thread CPU per span: {cpu_per_span * 1e6:.0f} us (span built and queued)")
    print(f"end to end: {len(rows) / elapsed:,.0f} spans/s (queued, encoded, sent, answered)")
    print(f"import of the exporter: {import_ms():.0f} ms (once per worker, only with [otel] endpoint set)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
