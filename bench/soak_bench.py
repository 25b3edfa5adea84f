"""Soak: concurrent clients through `ctxbudget proxy` while its analysis worker is SIGKILLed on a timer.

Counts requests the clients saw complete against journal rows at the end (target: equal, 0 lost, no
duplicates) and samples the proxy's RSS (target < 100 MB). The upstream is a fast fake (raw asyncio,
JSON replies); the proxy is the real `python -m tui proxy` subprocess with its real analysis worker.

    python bench/soak_bench.py                                  # 32 clients, 120 s, kill every 20 s
    python bench/soak_bench.py --clients 8 --duration 20 --kill-every 5   # a short run
    python bench/soak_bench.py --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
REPLY = json.dumps(
    {
        "id": "msg_soak",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "ok"}],
        "usage": {"input_tokens": 900, "output_tokens": 2},
    }
).encode()


def request_body(i: int) -> bytes:
    """A small Messages request (about 4 KB), different per client so sessions differ."""
    return json.dumps(
        {
            "model": "soak",
            "max_tokens": 16,
            "system": [{"type": "text", "text": "You are a soak test. " * 40}],
            "messages": [{"role": "user", "content": f"client {i}: " + "lorem ipsum " * 200}],
            "metadata": {"user_id": f"user_soak_account__session_{i:08d}"},
        }
    ).encode()


async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every keep-alive request at once with REPLY."""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(REPLY)}\r\n\r\n"
    try:
        while True:
            lines = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in lines.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            writer.write(head.encode() + REPLY)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def health(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """The proxy's /_ctxbudget/health."""
    async with session.get(url + "/_ctxbudget/health") as r:
        body: dict[str, Any] = await r.json()
        return body


async def soak(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Run one soak; returns the numbers."""
    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    up_port = server.sockets[0].getsockname()[1]
    config = tmp / "config.toml"
    config.write_text(f'[anatomy]\ncounter = "{args.counter}"\n')
    journal = tmp / "data" / "journal.sqlite3"
    with socket_port() as port:
        pass
    env = {
        **os.environ,
        "CTXBUDGET_CONFIG": str(config),
        "CTXBUDGET_DATA_DIR": str(tmp / "data"),
        "XDG_DATA_HOME": str(tmp / "xdg"),
        "PYTHONPATH": str(REPO),
    }
    out = open(tmp / "proxy.out", "wb")  # noqa: SIM115  (the child writes it)
    proxy = subprocess.Popen(
        [sys.executable, "-m", "tui", "proxy", "--quiet", "--listen", f"127.0.0.1:{port}",
         "--upstream", f"http://127.0.0.1:{up_port}", "--journal", str(journal)],
        stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp,
    )
    url = f"http://127.0.0.1:{port}"
    completed = failed = kills = 0
    rss_max = 0.0
    stop = asyncio.Event()
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        deadline = time.monotonic() + 30
        while True:
            try:
                await health(session, url)
                break
            except aiohttp.ClientError:
                if time.monotonic() > deadline or proxy.poll() is not None:
                    raise SystemExit("soak: the proxy did not start; see " + str(tmp / "proxy.out")) from None
                await asyncio.sleep(0.1)

        async def client(i: int) -> None:
            nonlocal completed, failed
            body = request_body(i)
            async with aiohttp.ClientSession(timeout=timeout) as own:
                while not stop.is_set():
                    try:
                        async with own.post(url + "/v1/messages", data=body) as r:
                            if r.status == 200 and await r.read() == REPLY:
                                completed += 1
                            else:
                                failed += 1
                    except aiohttp.ClientError:
                        failed += 1

        async def killer() -> None:
            nonlocal kills
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), args.kill_every)
                    return
                except TimeoutError:
                    pass
                pid = (await health(session, url)).get("worker_pid")
                if isinstance(pid, int):
                    os.kill(pid, signal.SIGKILL)
                    kills += 1

        async def sampler() -> None:
            nonlocal rss_max
            while not stop.is_set():
                rss_max = max(rss_max, rss_mb(proxy.pid))
                await asyncio.sleep(0.5)

        tasks = [asyncio.create_task(client(i)) for i in range(args.clients)]
        tasks += [asyncio.create_task(killer()), asyncio.create_task(sampler())]
        started = time.monotonic()
        await asyncio.sleep(args.duration)
        stop.set()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - started
        rss_end = rss_mb(proxy.pid)
        rss_max = max(rss_max, rss_end)
        drain_started = time.monotonic()
        while True:  # let the worker catch up before stopping, so the count is the journal's, not the spool's
            h = await health(session, url)
            if h["journaled"] + h["not_journaled"] >= h["requests"] or time.monotonic() - drain_started > 300:
                break
            await asyncio.sleep(0.5)
        drain_s = time.monotonic() - drain_started
    proxy.send_signal(signal.SIGTERM)
    proxy.wait(60)
    rows_at_stop = count_rows(journal)
    left_in_spool = rows_at_stop < completed
    if left_in_spool:  # the worker had not caught up: the next start replays the spool
        replay = subprocess.Popen(proxy.args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                try:
                    h = await health(session, url)
                    if h["journaled"] + h["not_journaled"] >= h.get("replayed", 0) and not any(
                        (tmp / "data" / "journal.sqlite3-spool").glob("*.spool")
                    ):
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.5)
        replay.send_signal(signal.SIGTERM)
        replay.wait(60)
    out.close()
    server.close()
    rows = count_rows(journal)
    return {
        "clients": args.clients,
        "duration_s": round(elapsed, 1),
        "kill_every_s": args.kill_every,
        "worker_kills": kills,
        "worker_restarts": h["worker_restarts"],
        "forwarded_completed": completed,
        "client_errors": failed,
        "proxy_requests": h["requests"],
        "journal_rows_at_stop": rows_at_stop,
        "journal_rows": rows,
        "lost": completed - rows,
        "not_journaled": h["not_journaled"],
        "drain_after_load_s": round(drain_s, 1),
        "proxy_rss_mb_max": round(rss_max, 1),
        "proxy_rss_mb_end": round(rss_end, 1),
        "requests_per_s": round(completed / elapsed, 1),
        "proxy_exit": proxy.returncode,
    }


def count_rows(journal: Path) -> int:
    """Rows in the journal."""
    with sqlite3.connect(journal) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])


class socket_port:
    """A free loopback port (bound, then released for the proxy)."""

    def __enter__(self) -> int:
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return int(self.sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def main() -> None:
    """Parse flags, run, print (and optionally write) the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    parser.add_argument("--kill-every", type=float, default=20.0, help="seconds between worker SIGKILLs")
    parser.add_argument("--counter", default="tiktoken", help="[anatomy] counter for the proxy")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctxbudget-soak-") as tmp:
        result = asyncio.run(soak(args, Path(tmp)))
    for key, value in result.items():
        print(f"{key:>22}: {value}")
    verdict = "PASS" if result["lost"] == 0 and result["proxy_rss_mb_max"] < 100 else "FAIL"
    print(f"{'verdict':>22}: {verdict} (target: 0 lost, proxy RSS < 100 MB)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
