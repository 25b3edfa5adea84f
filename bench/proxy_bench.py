"""Added latency, CPU and memory of the ctxbudget proxy versus talking to the upstream directly.

Three processes: a fast fake LLM upstream (raw asyncio), the proxy (ProxyService with its real journal and
analyzer), and a load client (raw sockets, keep-alive). Direct and proxied requests are interleaved
A B B A so drift cancels. The request body is a ~150 KB Claude-Code-shaped /v1/messages request.

    python bench/proxy_bench.py                 # full run (about a minute on 2 cores)
    python bench/proxy_bench.py --iterations 50 # quicker
    python bench/proxy_bench.py --json out.json # also write the numbers
    python bench/proxy_bench.py --baseline ../main  # before/after: another checkout's proxy, interleaved
"""

from __future__ import annotations

import argparse
import asyncio
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
SSE_EVENTS = 200
JSON_REPLY = json.dumps(
    {
        "id": "msg_bench",
        "type": "message",
        "role": "assistant",
        "model": "bench",
        "content": [{"type": "text", "text": "ok " * 40}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1200, "cache_read_input_tokens": 30000, "output_tokens": 40},
    }
).encode()


# ---------------------------------------------------------------- request body


def claude_code_body(target_bytes: int = 150_000) -> bytes:
    """A deterministic Claude-Code-shaped streaming Messages request of about target_bytes."""
    words = ("file", "tool", "context", "token", "agent", "buffer", "server", "request", "cache", "slot")

    def prose(n: int, seed: int) -> str:
        return " ".join(words[(seed * 7 + i * 3) % len(words)] for i in range(n))

    tools = [
        {
            "name": name,
            "description": prose(260, i),
            "input_schema": {
                "type": "object",
                "properties": {
                    f"arg{j}": {"type": "string", "description": prose(18, i + j)} for j in range(6)
                },
                "required": ["arg0"],
            },
        }
        for i, name in enumerate(
            [
                "Bash",
                "Read",
                "Edit",
                "Write",
                "Glob",
                "Grep",
                "Agent",
                "WebFetch",
                "TodoWrite",
                "NotebookEdit",
                "ListMcpResourcesTool",
                "ReadMcpResourceTool",
                "mcp__filesystem__read_file",
                "mcp__filesystem__list_directory",
                "mcp__memory__create_entities",
                "mcp__memory__search_nodes",
            ]
        )
    ]
    body: dict[str, Any] = {
        "model": "claude-sonnet-bench",
        "max_tokens": 32000,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 31999},
        "metadata": {"user_id": json.dumps({"device_id": "bench", "session_id": "bench-session"})},
        "system": [
            {
                "type": "text",
                "text": "x-anthropic-billing-header: cc_version=2.1.197.abc; cc_entrypoint=cli;",
            },
            {
                "type": "text",
                "text": "You are Claude Code, Anthropic's official CLI for Claude.",
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "text", "text": prose(4500, 1), "cache_control": {"type": "ephemeral"}},
        ],
        "tools": tools,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>" + prose(600, 2) + "</system-reminder>"},
                    {"type": "text", "text": "fix the failing test in the proxy"},
                ],
            },
        ],
    }
    turn = 0
    while len(json.dumps(body)) < target_bytes:
        turn += 1
        body["messages"].append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": prose(40, turn)},
                    {
                        "type": "tool_use",
                        "id": f"toolu_{turn}",
                        "name": "Read",
                        "input": {"arg0": f"src/f{turn}.py"},
                    },
                ],
            }
        )
        body["messages"].append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{turn}", "content": prose(300, turn)},
                ],
            }
        )
    body["messages"][-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return json.dumps(body).encode()


# ---------------------------------------------------------------- fake upstream


def tokenize_reply(body: bytes) -> bytes:
    """A /tokenize answer shaped like llama-server's: one token per 4 bytes of content (a stand-in)."""
    content = json.loads(body).get("content", "")
    return json.dumps({"tokens": [0] * max(1, len(content.encode()) // 4)}).encode()


async def upstream_main(port: int, burst: bool) -> None:
    """A raw asyncio HTTP/1.1 server: JSON or 200-event SSE replies with no delay, keep-alive.

    Each event is written and the server yields to its loop (no sleep); with `burst` it writes all
    200 without yielding, which mostly measures the OS scheduler on a small machine.
    """
    sse_events = [
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":'
        b'{"type":"text_delta","text":"tok%d"}}\n\n' % i
        for i in range(SSE_EVENTS)
    ]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1]
                length = 0
                stream = False
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    key = name.strip().lower()
                    if key == b"content-length":
                        length = int(value)
                    elif key == b"x-bench-mode":
                        stream = value.strip() == b"stream"
                body = await reader.readexactly(length) if length else b""
                if target in (b"/tokenize", b"/v1/models"):  # for `--counter auto`, as llama-server
                    reply = tokenize_reply(body) if target == b"/tokenize" else b'{"data":[{"id":"bench"}]}'
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                        % len(reply)
                        + reply
                    )
                    await writer.drain()
                    continue
                if not stream:
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                        % len(JSON_REPLY)
                        + JSON_REPLY
                    )
                    await writer.drain()
                    continue
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                for event in sse_events:
                    writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                    await writer.drain()
                    if not burst:
                        await asyncio.sleep(0)  # flush each event as produced, like a real server
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# ---------------------------------------------------------------- proxies under test


async def proxy_main(
    port: int, upstream: str, journal: str, analysis: str, pipeline: str, rewrite: bool = True,
    spool: bool = True, team: bool = False, counter: str = "tiktoken",
) -> None:
    """The real ProxyService (journal + analyzer in its background thread)."""
    sys.path.insert(0, str(REPO))
    from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, Settings
    from tui.core.proxy.service import ProxyService

    settings = Settings(
        proxy=ProxySettings(listen=f"127.0.0.1:{port}", upstream=upstream),
        journal=JournalSettings(path=journal),
        anatomy=AnatomySettings(counter=counter, mcp_servers=["filesystem", "memory"]),
    )
    if team:  # 20 users; the client's x-api-key is one of them: hashed and looked up per request
        import dataclasses

        from tui.core.config import TeamSettings
        from tui.core.team.keys import hash_key

        users = {f"dev{i}": hash_key(f"bench-key-{i}") for i in range(19)} | {"bench": hash_key("bench-key")}
        settings = dataclasses.replace(settings, team=TeamSettings(users=users))
    from tui.core.analysis.sinks import NullAnalyzer

    factory = NullAnalyzer if analysis == "off" else None
    # rewrite on: the default [transforms] (the stabilizer rewrites the body's billing header each time).
    service = ProxyService(settings, analyzer_factory=factory, analysis=pipeline, rewrite=rewrite)
    await service.start()
    if not spool and service.pipeline is not None:
        service.pipeline.spool = None  # type: ignore[attr-defined]  # measure the spool's own cost
    print("ready", flush=True)
    await asyncio.Event().wait()


async def minimal_proxy_main(port: int, upstream: str) -> None:
    """For calibration: a ~30-line aiohttp server + aiohttp client pass-through (no capture, no journal)."""
    import aiohttp
    from aiohttp import web

    session = aiohttp.ClientSession(auto_decompress=False)
    drop = {"host", "content-length", "transfer-encoding", "connection"}

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in drop]
        url = upstream + request.raw_path
        async with session.request(request.method, url, headers=headers, data=body) as up:
            response = web.StreamResponse(
                status=up.status, headers=[(k, v) for k, v in up.headers.items() if k.lower() not in drop]
            )
            await response.prepare(request)
            async for chunk in up.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


async def httpx_proxy_main(port: int, upstream: str) -> None:
    """For comparison: a minimal pass-through with the aiohttp server and an httpx client."""
    import httpx
    from aiohttp import web

    client = httpx.AsyncClient(base_url=upstream, timeout=None)
    drop = {"host", "content-length", "transfer-encoding", "connection"}

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in drop]
        upstream_req = client.build_request(request.method, request.raw_path, headers=headers, content=body)
        upstream_resp = await client.send(upstream_req, stream=True)
        response = web.StreamResponse(
            status=upstream_resp.status_code,
            headers=[(k, v) for k, v in upstream_resp.headers.items() if k.lower() not in drop],
        )
        await response.prepare(request)
        async for chunk in upstream_resp.aiter_raw():
            await response.write(chunk)
        await upstream_resp.aclose()
        await response.write_eof()
        return response

    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- load client


class Conn:
    """One keep-alive HTTP/1.1 connection that times the first response byte and the full body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, body: bytes, stream: bool, path: bytes = b"/v1/messages?beta=true"
    ) -> tuple[float, float, int]:
        """(ttfb ms, total ms, body bytes) of one POST."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"x-api-key: bench-key\r\nanthropic-version: 2023-06-01\r\nX-Claude-Code-Session-Id: bench\r\n"
            b"x-bench-mode: %s\r\nContent-Length: %d\r\n\r\n"
            % (path, b"stream" if stream else b"json", len(body))
        )
        t0 = time.perf_counter()
        self.writer.write(head + body)
        first = await self.reader.read(1)
        ttfb = time.perf_counter() - t0
        rest = await self.reader.readuntil(b"\r\n\r\n")
        headers = (first + rest).lower()
        size = 0
        if b"transfer-encoding: chunked" in headers:
            while True:
                line = await self.reader.readuntil(b"\r\n")
                n = int(line.split(b";")[0], 16)
                await self.reader.readexactly(n + 2)
                size += n
                if n == 0:
                    break
        else:
            length = int(headers.split(b"content-length:")[1].split(b"\r\n")[0])
            await self.reader.readexactly(length)
            size = length
        total = time.perf_counter() - t0
        return ttfb * 1000.0, total * 1000.0, size


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int, tid: int) -> float:
    """utime + stime of one thread, seconds."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct child processes (the analysis worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def tree_cpu_s(pid: int) -> tuple[float, float]:
    """(process CPU, its children's CPU) in seconds."""
    kids = 0.0
    for child in children(pid):
        try:
            kids += proc_cpu_s(child)
        except OSError:
            pass
    return proc_cpu_s(pid), kids


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident set size in MB (field VmHWM: the process's peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def tree_peak_rss_mb(pid: int) -> float:
    """Peak RSS of the proxy plus its analysis worker (the sum of each process's own peak)."""
    return rss_mb(pid, "VmHWM") + sum(rss_mb(c, "VmHWM") for c in children(pid))


def pct(values: list[float], q: float) -> float:
    """Percentile (nearest rank on the sorted values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))]


async def client_main(args: argparse.Namespace) -> None:
    """Interleaved A/B/B/A load; prints one JSON document with all measurements."""
    body = claude_code_body()
    direct, proxied = Conn(args.upstream_port), Conn(args.proxy_port)
    minimal = Conn(args.minimal_port) if args.minimal_port else None
    conns = {"direct": direct, "proxy": proxied, "minimal": minimal}
    # With the minimal pass-through in the same run: each round visits every target once per position.
    order = ("direct", "proxy", "minimal", "minimal", "proxy", "direct") if minimal else (
        "direct", "proxy", "proxy", "direct")
    results: dict[str, Any] = {"body_bytes": len(body), "modes": {}}
    proxied_count = 0
    rss_at_1000: float | None = None
    tree_peak_at_1000: float | None = None
    for stream in (False, True):
        mode = "stream" if stream else "json"
        for _ in range(args.warmup):
            await direct.request(body, stream)
            await proxied.request(body, stream)
            if minimal is not None:
                await minimal.request(body, stream)
            proxied_count += 1
        samples: dict[str, dict[str, list[float]]] = {
            side: {"ttfb": [], "total": []} for side in dict.fromkeys(order)
        }
        cpu0, kids0 = tree_cpu_s(args.proxy_pid)
        loop0 = thread_cpu_s(args.proxy_pid, args.proxy_pid)
        for _ in range(args.iterations):
            for side in order:
                conn = conns[side]
                assert conn is not None
                ttfb, total, _ = await conn.request(body, stream)
                samples[side]["ttfb"].append(ttfb)
                samples[side]["total"].append(total)
                if args.pace_ms:
                    await asyncio.sleep(args.pace_ms / 1000.0)
                if side == "proxy":
                    proxied_count += 1
                    if proxied_count == 1000:
                        rss_at_1000 = rss_mb(args.proxy_pid)
                        tree_peak_at_1000 = tree_peak_rss_mb(args.proxy_pid)
        n = 2 * args.iterations
        cpu1, kids1 = tree_cpu_s(args.proxy_pid)
        cpu = (cpu1 - cpu0) * 1000.0 / n
        kids_cpu = (kids1 - kids0) * 1000.0 / n
        loop_cpu = (thread_cpu_s(args.proxy_pid, args.proxy_pid) - loop0) * 1000.0 / n
        summary: dict[str, Any] = {
            "n_per_side": n,
            "proxy_cpu_ms_per_request": round(cpu, 3),
            "event_loop_cpu_ms_per_request": round(loop_cpu, 3),
            "worker_cpu_ms_per_request": round(kids_cpu, 3),
        }
        for metric in ("ttfb", "total"):
            for q in (50, 99):
                d = pct(samples["direct"][metric], q)
                p = pct(samples["proxy"][metric], q)
                summary[f"{metric}_p{q}_direct_ms"] = round(d, 3)
                summary[f"{metric}_p{q}_proxy_ms"] = round(p, 3)
                summary[f"added_{metric}_p{q}_ms"] = round(p - d, 3)
                if minimal is not None:
                    m = pct(samples["minimal"][metric], q) - d
                    summary[f"minimal_added_{metric}_p{q}_ms"] = round(m, 3)
                    summary[f"ratio_{metric}_p{q}"] = round((p - d) / m, 2) if m > 0 else None
            summary[f"added_{metric}_mean_ms"] = round(
                statistics.fmean(samples["proxy"][metric]) - statistics.fmean(samples["direct"][metric]), 3
            )
        results["modes"][mode] = summary
    results["proxied_requests"] = proxied_count
    results["rss_mb_after_1000"] = round(rss_at_1000, 1) if rss_at_1000 else None
    results["tree_peak_rss_mb_after_1000"] = round(tree_peak_at_1000, 1) if tree_peak_at_1000 else None
    results["rss_mb_end"] = round(rss_mb(args.proxy_pid), 1)
    results["worker_rss_mb_end"] = round(sum(rss_mb(c) for c in children(args.proxy_pid)), 1)
    if args.journal:
        results["journal"] = await journal_visibility(proxied, body, Path(args.journal), proxied_count)
    print(json.dumps(results), flush=True)


async def journal_visibility(
    conn: Conn, body: bytes, journal: Path, proxied_total: int, n: int = 30
) -> dict[str, Any]:
    """Time from a finished proxied response to its row being visible to another process's reader."""
    sys.path.insert(0, str(REPO))
    from tui.core.journal.writer import JournalReader

    reader = JournalReader(journal)
    delays: list[float] = []
    deadline = time.monotonic() + 120
    while reader.count() < proxied_total and time.monotonic() < deadline:  # let the backlog drain first
        await asyncio.sleep(0.05)
    rows = reader.since(0, limit=1_000_000)
    analyzed = sum(1 for r in rows if r.anatomy is not None)
    dropped = sum(1 for r in rows if (r.unparsed_reason or "").startswith("analysis backlog full"))
    for i in range(n):
        path = b"/v1/messages?beta=true&visibility=%d" % i
        await conn.request(body, True, path)
        done = time.perf_counter()
        while not any(r.path == path.decode() for r in reader.poll()):
            await asyncio.sleep(0.002)
        delays.append((time.perf_counter() - done) * 1000.0)
        await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    for _ in range(1000):
        reader.changed()
    check_us = (time.perf_counter() - t0) * 1000.0
    return {
        "visible_after_ms_p50": round(pct(delays, 50), 2),
        "visible_after_ms_max": round(max(delays), 2),
        "change_check_us": round(check_us, 2),
        "rows": len(rows),
        "rows_with_anatomy": analyzed,
        "rows_bodies_dropped": dropped,
    }


# ---------------------------------------------------------------- orchestration


def free_port() -> int:
    """A free loopback port."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spawn(*role_args: str, repo: Path = REPO) -> subprocess.Popen[str]:
    """Start this script (or `repo`'s copy of it) in another role and wait for its "ready" line."""
    proc = subprocess.Popen(
        [sys.executable, str(repo / "bench" / "proxy_bench.py"), *role_args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise SystemExit(f"bench: {role_args[:2]} did not start: {line!r}")
    return proc


def run_one(kind: str, args: argparse.Namespace, upstream_port: int, tmp: str) -> dict[str, Any]:
    """Start one proxy implementation, load it, stop it; returns the client's measurements."""
    port = free_port()
    proxied = kind in (
        "ctxbudget", "ctxbudget-no-rewrite", "ctxbudget-no-spool", "ctxbudget-team", "baseline"
    )
    # One journal (and spool) per run: a second run of the same kind must not replay the first one's spool.
    journal = os.path.join(tmp, f"journal-{kind}-{port}.sqlite3") if proxied else ""
    if proxied:
        role = [
            "--role",
            "proxy",
            "--journal",
            journal,
            "--analysis",
            args.analysis,
            "--pipeline",
            args.pipeline,
            "--rewrite",
            "off" if kind == "ctxbudget-no-rewrite" else "on",
        ]
        if kind == "ctxbudget-no-spool":
            role += ["--spool", "off"]  # only then: a --baseline checkout's copy may not know the flag
        if kind == "ctxbudget-team":
            role += ["--team", "on"]
        if args.counter != "tiktoken":
            role += ["--counter", args.counter]  # likewise
    else:
        role = ["--role", "minimal-proxy" if kind == "minimal-aiohttp" else "httpx-proxy"]
    repo = Path(args.baseline).resolve() if kind == "baseline" else REPO
    proxy = spawn(*role, "--port", str(port), "--upstream", f"http://127.0.0.1:{upstream_port}", repo=repo)
    minimal_port = free_port() if args.interleave_minimal and proxied else 0
    minimal = (
        spawn("--role", "minimal-proxy", "--port", str(minimal_port), "--upstream", f"http://127.0.0.1:{upstream_port}")
        if minimal_port
        else None
    )
    try:
        client = subprocess.run(
            [
                sys.executable,
                __file__,
                "--role",
                "client",
                "--upstream-port",
                str(upstream_port),
                "--proxy-port",
                str(port),
                "--proxy-pid",
                str(proxy.pid),
                "--iterations",
                str(args.iterations),
                "--warmup",
                str(args.warmup),
                "--journal",
                journal,
                "--pace-ms",
                str(args.pace_ms),
                "--minimal-port",
                str(minimal_port),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
        if client.returncode != 0:
            raise SystemExit(f"bench client failed:\n{client.stderr}")
        result: dict[str, Any] = json.loads(client.stdout.strip().splitlines()[-1])
        return result
    finally:
        proxy.terminate()
        proxy.wait(10)
        if minimal is not None:
            minimal.terminate()
            minimal.wait(10)


def _ratio_text(ratio: float | None) -> str:
    """A ratio to the pass-through, or why there is none (it added nothing at that percentile)."""
    return f"{ratio}x" if ratio is not None else "n/a (the pass-through added nothing)"


def print_report(kind: str, result: dict[str, Any]) -> None:
    """Human summary of one implementation."""
    print(f"\n== {kind}: body {result['body_bytes']:,} B, {result['proxied_requests']} proxied requests")
    print(
        f"{'mode':<7} {'added ttfb p50':>15} {'p99':>8} {'added total p50':>16} {'p99':>8} "
        f"{'proxy cpu/req':>14} {'(event loop)':>13} {'worker cpu/req':>15}"
    )
    for mode, s in result["modes"].items():
        print(
            f"{mode:<7} {s['added_ttfb_p50_ms']:>12.2f} ms {s['added_ttfb_p99_ms']:>5.2f} ms "
            f"{s['added_total_p50_ms']:>13.2f} ms {s['added_total_p99_ms']:>5.2f} ms "
            f"{s['proxy_cpu_ms_per_request']:>11.2f} ms {s['event_loop_cpu_ms_per_request']:>10.2f} ms "
            f"{s['worker_cpu_ms_per_request']:>12.2f} ms"
        )
        if "minimal_added_ttfb_p50_ms" in s:
            print(
                f"{'':<7} minimal pass-through in the same rounds: added ttfb p50 "
                f"{s['minimal_added_ttfb_p50_ms']:.2f} ms p99 {s['minimal_added_ttfb_p99_ms']:.2f} ms; "
                f"ratio p50 {_ratio_text(s['ratio_ttfb_p50'])}, p99 {_ratio_text(s['ratio_ttfb_p99'])}"
            )
    if result["rss_mb_after_1000"] is None:  # fewer than 1,000 proxied requests in this run
        n_a = f"n/a ({result['proxied_requests']} requests)"
        at_1000, peak_1000 = n_a, n_a
    else:
        at_1000 = f"{result['rss_mb_after_1000']} MB"
        peak_1000 = f"{result['tree_peak_rss_mb_after_1000']} MB"
    print(
        f"proxy RSS after 1000 proxied requests: {at_1000}; "
        f"at end {result['rss_mb_end']} MB (analysis worker process: {result['worker_rss_mb_end']} MB); "
        f"peak of proxy + worker by request 1000: {peak_1000}"
    )
    if "journal" in result:
        j = result["journal"]
        print(
            f"journal: {j['rows']} rows during the load, {j['rows_with_anatomy']} with anatomy, "
            f"{j['rows_bodies_dropped']} past the analysis backlog (bodies dropped)"
        )
        print(
            f"journal row visible to another process: p50 {j['visible_after_ms_p50']} ms, "
            f"max {j['visible_after_ms_max']} ms after the response; "
            f"change check {j['change_check_us']} us"
        )


def main() -> None:
    """Parse the role and run it."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--role",
        default="main",
        choices=["main", "upstream", "proxy", "minimal-proxy", "httpx-proxy", "client"],
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--upstream", default="")
    parser.add_argument("--upstream-port", type=int, default=0)
    parser.add_argument("--proxy-port", type=int, default=0)
    parser.add_argument("--proxy-pid", type=int, default=0)
    parser.add_argument("--minimal-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--journal", default="")
    parser.add_argument(
        "--iterations", type=int, default=250, help="A/B/B/A rounds per mode (2 per side each)"
    )
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--burst", action="store_true", help="upstream sends all events unyielding")
    parser.add_argument(
        "--pace-ms",
        type=float,
        default=0.0,
        help="pause between requests (0: back to back, worst case for the analysis worker)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also measure a minimal aiohttp pass-through and an aiohttp-server + httpx-client one",
    )
    parser.add_argument(
        "--interleave-minimal",
        action="store_true",
        help="run the minimal aiohttp pass-through next to each ctxbudget proxy, its requests interleaved "
        "in the same rounds (ratio = ctxbudget's added latency / the pass-through's)",
    )
    parser.add_argument("--json", metavar="PATH", help="write all results as JSON")
    parser.add_argument(
        "--baseline",
        metavar="CHECKOUT",
        help="also measure the proxy of another checkout (e.g. main), runs interleaved with this one",
    )
    parser.add_argument(
        "--rewrite",
        choices=["on", "off"],
        default="on",
        help="proxy role: the request-rewrite hook (MCP switches, compaction, transforms)",
    )
    parser.add_argument(
        "--rewrite-compare",
        action="store_true",
        help="also measure the proxy with the rewrite hook off (the hook's own cost)",
    )
    parser.add_argument(
        "--spool",
        choices=["on", "off"],
        default="on",
        help="proxy role: spool captures to disk before the worker (off only to measure its cost)",
    )
    parser.add_argument(
        "--team",
        choices=["on", "off"],
        default="off",
        help="proxy role: team mode (20 users; each request's key hashed, looked up, replaced upstream)",
    )
    parser.add_argument(
        "--team-compare",
        action="store_true",
        help="also measure the proxy in team mode, interleaved (the key gate's own cost)",
    )
    parser.add_argument(
        "--spool-compare",
        action="store_true",
        help="also measure the proxy with the capture spool off, interleaved (the spool's own cost)",
    )
    parser.add_argument(
        "--analysis",
        choices=["on", "off"],
        default="on",
        help="off: journal rows without anatomy (isolates the forwarding cost)",
    )
    parser.add_argument(
        "--counter",
        choices=["tiktoken", "auto"],
        default="tiktoken",
        help="the worker's token counter; auto: the upstream's /tokenize, as with llama-server",
    )
    parser.add_argument(
        "--pipeline",
        choices=["process", "thread"],
        default="process",
        help="where analysis + journaling run (ProxyService(analysis=...))",
    )
    args = parser.parse_args()
    if args.role == "upstream":
        asyncio.run(upstream_main(args.port, args.burst))
    elif args.role == "proxy":
        asyncio.run(
            proxy_main(
                args.port, args.upstream, args.journal, args.analysis, args.pipeline, args.rewrite == "on",
                args.spool == "on", args.team == "on", args.counter,
            )
        )
    elif args.role == "minimal-proxy":
        asyncio.run(minimal_proxy_main(args.port, args.upstream))
    elif args.role == "httpx-proxy":
        asyncio.run(httpx_proxy_main(args.port, args.upstream))
    elif args.role == "client":
        asyncio.run(client_main(args))
    else:
        upstream_port = free_port()
        burst = ["--burst"] if args.burst else []
        upstream = spawn("--role", "upstream", "--port", str(upstream_port), *burst)
        results: dict[str, Any] = {}
        try:
            with tempfile.TemporaryDirectory(prefix="ctxbudget-bench-") as tmp:
                os.environ["CTXBUDGET_DATA_DIR"] = tmp  # switch state files: never the user's own
                kinds = ["ctxbudget"]
                if args.rewrite_compare:
                    kinds = ["ctxbudget-no-rewrite", "ctxbudget", "ctxbudget-no-rewrite", "ctxbudget"]
                if args.baseline:
                    kinds = ["baseline", "ctxbudget", "baseline", "ctxbudget"]
                if args.spool_compare:
                    kinds = ["ctxbudget-no-spool", "ctxbudget", "ctxbudget-no-spool", "ctxbudget"]
                if args.team_compare:
                    kinds = ["ctxbudget", "ctxbudget-team", "ctxbudget", "ctxbudget-team"]
                if args.compare:
                    kinds += ["minimal-aiohttp", "aiohttp+httpx"]
                for i, kind in enumerate(kinds):
                    label = kind if kind not in kinds[:i] else f"{kind} (run {kinds[: i + 1].count(kind)})"
                    results[label] = run_one(kind, args, upstream_port, tmp)
                    print_report(label, results[label])
        finally:
            upstream.terminate()
            upstream.wait(10)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
