"""Record the demo session that `ctxbudget demo` replays (tui/demo_data/session.jsonl.gz).

What it does, all for real: builds/finds llama-server, writes the tiny sliding-window model from
tests/support (it creates context checkpoints), starts llama-server with a log file, starts the
ctxbudget proxy (ProxyService) in front of it, and sends a scripted Claude-Code-shaped session through
the proxy: a title request, a conversation that grows turn by turn with built-in and MCP tools, one
long prompt (a big tool result, so llama-server logs prompt-processing progress), and a branch that
re-sends an earlier turn with an edit (checkpoint restore and erase lines). Meanwhile it records every
journal row (with anatomy parts), every server log line, and ServerPoller / GpuSampler snapshots, each
stamped with seconds since the start.

Run:  /work/venv/bin/python scripts/record_demo.py [--out tui/demo_data/session.jsonl.gz]
Then: ctxbudget demo            (replays it at dashboard.demo_speed, 4x by default)
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import httpx  # noqa: E402
from builders import cc_request, cc_title_request, words  # noqa: E402
from support.llama import start_llama_server  # noqa: E402
from support.tiny_models import write_checkpoint_model  # noqa: E402

from tui.core.config import (  # noqa: E402
    AnatomySettings,
    JournalSettings,
    ProxySettings,
    ServerSettings,
    Settings,
)
from tui.core.feed.codec import gpu_to_json, record_to_json, server_to_json  # noqa: E402
from tui.core.feed.recording import DEMO_RECORDING, RecordingWriter  # noqa: E402
from tui.core.journal.reader import JournalReader  # noqa: E402
from tui.core.llama_binary import find_llama_server  # noqa: E402
from tui.core.logs.tail import LogTailer  # noqa: E402
from tui.core.poll.gpu import GpuSampler  # noqa: E402
from tui.core.poll.server_poller import ServerPoller  # noqa: E402
from tui.core.proxy.service import ProxyService  # noqa: E402

MAX_BODY_BYTES = 24_000  # keep bodies of small requests only, so the recording stays small
THINK_S = 1.5  # pause between requests, like an agent running tools


class Recorder:
    """Stamps observations with seconds since start and writes them."""

    def __init__(self, writer: RecordingWriter) -> None:
        self.writer = writer
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add(self, kind: Any, data: Any) -> None:
        self.writer.add(self.now(), kind, data)


def session_requests() -> list[tuple[str, dict[str, Any]]]:
    """The scripted session: (label, body) in order."""
    out: list[tuple[str, dict[str, Any]]] = [("title", cc_title_request())]
    for turns in range(0, 5):
        body = cc_request(turns=turns, images=0)
        out.append((f"turn {turns + 1}", body))
    long_body = cc_request(turns=5, images=0)
    # A long tool result (a big file read): prompt processing takes seconds and logs progress.
    long_body["messages"][-1]["content"][0]["content"] = [{"type": "text", "text": words(22_000, 77)}]
    out.append(("long tool result", long_body))
    follow = cc_request(turns=5, images=0)
    follow["messages"][-1]["content"][0]["content"] = [{"type": "text", "text": words(22_000, 77)}]
    follow["messages"].append({"role": "assistant", "content": [{"type": "text", "text": words(40, 90)}]})
    follow["messages"].append({"role": "user", "content": "Now run the tests again please"})
    out.append(("after long result", follow))
    branch = copy.deepcopy(cc_request(turns=2, images=0))
    branch["messages"][-1]["content"][0]["content"] = [{"type": "text", "text": words(150, 999)}]
    out.append(("branch: earlier turn edited", branch))
    return out


async def send(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    """POST like Claude Code does and drain the stream."""
    body = dict(body, max_tokens=min(int(body.get("max_tokens", 200)), 120))
    async with client.stream(
        "POST",
        "/v1/messages?beta=true",
        json=body,
        headers={"x-api-key": "demo", "anthropic-version": "2023-06-01"},
    ) as response:
        async for _ in response.aiter_bytes():
            pass


async def record(out: Path, workdir: Path) -> None:
    binary = find_llama_server(build=True)
    model = write_checkpoint_model(workdir / "tiny-swa.gguf")
    server = start_llama_server(
        binary,
        model,
        workdir / "server",
        ctx_size=131072,
        parallel=2,
        n_predict=120,
        extra_args=["--checkpoint-min-step", "64", "--metrics"],
    )
    journal_path = workdir / "journal.sqlite3"
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=server.url),
        journal=JournalSettings(path=str(journal_path), store_bodies=True),
        anatomy=AnatomySettings(mcp_servers=["filesystem", "memory"]),
        server=ServerSettings(url=server.url, log_file=str(server.log_path), poll_interval=1.0),
    )
    meta = {
        "made_with": "scripts/record_demo.py",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": model.name,
        "server_args": list(server.args),
        "server_url": "http://127.0.0.1:8080",
        "proxy": "127.0.0.1:3000",
        "log_file": "llama-server.log",
    }
    writer = RecordingWriter(out, meta)
    rec = Recorder(writer)
    records: list[int] = []
    proxy = ProxyService(settings, journal_path=journal_path, on_record=lambda r: records.append(r.id))
    reader = JournalReader(journal_path)
    poller = ServerPoller(server.url, interval=1.0)
    sampler = GpuSampler(server_url=server.url)
    tailer = LogTailer(server.log_path, from_start=True, backlog_lines=100_000)

    async def tail() -> None:
        async for batch in tailer.batches():
            for line in batch:
                rec.add("log", line)

    def on_server(snapshot: Any) -> None:
        rec.add("server", server_to_json(dataclasses.replace(snapshot, url="http://127.0.0.1:8080")))

    def on_gpu(snapshot: Any) -> None:
        rec.add("gpu", gpu_to_json(snapshot))

    async def journal_rows() -> None:
        seen = 0
        while True:
            for row_id in records[seen:]:
                full = await asyncio.to_thread(reader.get, row_id)
                if full is not None:
                    rec.add("record", record_to_json(full))
                    body = await asyncio.to_thread(reader.body, row_id)
                    if body is not None and len(body) <= MAX_BODY_BYTES:
                        writer.add(rec.now(), "body", {"id": row_id, "text": body.decode("utf-8", "replace")})
                seen += 1
            await asyncio.sleep(0.05)

    await proxy.start()
    tasks = [
        asyncio.create_task(tail()),
        asyncio.create_task(poller.run(on_server)),
        asyncio.create_task(sampler.run(on_gpu, interval=2.0)),
        asyncio.create_task(journal_rows()),
    ]
    try:
        await asyncio.sleep(2.0)
        async with httpx.AsyncClient(base_url=proxy.url, timeout=300.0, trust_env=False) as client:
            for label, body in session_requests():
                started = time.monotonic()
                await send(client, body)
                print(f"{rec.now():7.1f}s  {label}: {time.monotonic() - started:.1f}s", flush=True)
                poller.poke()
                await asyncio.sleep(THINK_S)
        await asyncio.to_thread(proxy.flush)
        await asyncio.sleep(3.0)
    finally:
        poller.stop()
        sampler.stop()
        tailer.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await proxy.stop()
        await poller.aclose()
        reader.close()
        server.stop()
        writer.close()
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {len(records)} requests)")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=DEMO_RECORDING, help="recording file (.jsonl or .jsonl.gz)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctxbudget-demo-") as tmp:
        asyncio.run(record(args.out, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
