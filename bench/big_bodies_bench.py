"""Proxy memory with very large request bodies: RSS after 8 bodies of 50 MB (over capture_limit_mb).

Starts the fake upstream and the real proxy of bench/proxy_bench.py (of this checkout, or of another one
with --repo) and sends the bodies one after another; prints RSS before, after and the peak (VmHWM).

    python bench/big_bodies_bench.py
    python bench/big_bodies_bench.py --repo ../main   # the same for another checkout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import proxy_bench  # noqa: E402


def start(repo: Path, *role_args: str) -> subprocess.Popen[str]:
    """One role of `repo`'s proxy_bench.py, once it says ready."""
    proc = subprocess.Popen(
        [sys.executable, str(repo / "bench" / "proxy_bench.py"), *role_args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise SystemExit(f"bench: {role_args[:2]} did not start")
    return proc


async def post(port: int, body: bytes) -> bytes:
    """One POST on a new connection; the status line."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /v1/messages HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"x-bench-mode: json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    writer.write(body)
    await writer.drain()
    head = await reader.readuntil(b"\r\n")
    writer.close()
    return head.strip()


def peak_mb(pid: int) -> float:
    """VmHWM (peak resident set) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


async def main() -> None:
    """Run the measurement and print one line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repo", default=str(HERE.parent), help="checkout whose proxy is measured")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--mb", type=int, default=50)
    args = parser.parse_args()
    repo = Path(args.repo).resolve()
    upstream_port, proxy_port = proxy_bench.free_port(), proxy_bench.free_port()
    with tempfile.TemporaryDirectory(prefix="ctxbudget-bench-") as tmp:
        os.environ["CTXBUDGET_DATA_DIR"] = tmp
        upstream = start(repo, "--role", "upstream", "--port", str(upstream_port))
        proxy = start(
            repo, "--role", "proxy", "--port", str(proxy_port), "--upstream", f"http://127.0.0.1:{upstream_port}",
            "--journal", f"{tmp}/journal.sqlite3", "--analysis", "off", "--rewrite", "on",
        )  # fmt: skip
        try:
            text = "y" * (args.mb * 1_000_000)
            body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()
            before = proxy_bench.rss_mb(proxy.pid)
            statuses = [await post(proxy_port, body) for _ in range(args.count)]
            time.sleep(1.0)
            after = proxy_bench.rss_mb(proxy.pid)
            ok = statuses.count(b"HTTP/1.1 200 OK")
            print(
                f"{repo}: {args.count} x {len(body) / 1e6:.0f} MB bodies, {ok} answered 200; proxy RSS "
                f"{before:.0f} MB before, {after:.0f} MB after, peak {peak_mb(proxy.pid):.0f} MB"
            )
        finally:
            proxy.terminate()
            upstream.terminate()
            proxy.wait(10)
            upstream.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
