"""Feed latency of `ctxbudget serve`: journal row committed on the server -> the row at a feed client.

Run: .venv/bin/python bench/feed_latency.py [--netns] [--requests N] [--clients 4] [--gap S] [--idle S]
[--json]

Starts a real llama-server (the tests' tiny model), `ctxbudget serve --proxy` as a subprocess, and
--clients feed streams in threads. Requests go through serve's proxy one at a time; a watcher polls the
journal (`PRAGMA data_version` every 1 ms) for the time each row becomes visible (its commit), and each
client notes when the row arrives on its stream. Latency = arrival - commit, over every row x client.
serve's CPU (its own process: hub, stream writer, log tailer, pollers; not the proxy child) comes from
/proc for the request phase and for an idle phase with the clients connected (pings only), measured
after --settle quiet seconds (the server poll slows down after 30 s without requests, as locally).
Over loopback, or with --netns (root, iproute2) across a veth link: llama-server and serve in a network
namespace (the "GPU box", serve starting llama-server through [server] autostart), clients and requests
outside it, as in the two-machine test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class Client(threading.Thread):
    """One feed stream; arrival time of each row id."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.token = token
        self.arrivals: dict[int, float] = {}
        self.ready = threading.Event()
        self.stop = False

    def run(self) -> None:
        try:
            self._read()
        except httpx.HTTPError:
            if not self.stop:  # serve going away at the end is expected
                raise

    def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=httpx.Timeout(30, read=30), trust_env=False) as client:
            with client.stream("GET", self.url + "/_ctxbudget/feed", headers=headers) as response:
                for line in response.iter_lines():
                    now = time.time()
                    if self.stop:
                        return
                    if not line:
                        continue
                    event = json.loads(line)
                    if event["type"] == "rows":
                        self.ready.set()
                        for record in event["data"]["records"]:
                            self.arrivals.setdefault(record["id"], now)


class CommitWatcher(threading.Thread):
    """When each journal row first becomes visible to a reader."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.commits: dict[int, float] = {}
        self.stop = False

    def run(self) -> None:
        while not self.path.exists() and not self.stop:
            time.sleep(0.01)
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        version = None
        last = 0
        while not self.stop:
            now_version = conn.execute("PRAGMA data_version").fetchone()[0]
            if now_version != version:
                version = now_version
                try:
                    rows = conn.execute("SELECT id FROM requests WHERE id > ?", (last,)).fetchall()
                except sqlite3.OperationalError:
                    rows = []
                now = time.time()
                for (row_id,) in rows:
                    self.commits.setdefault(row_id, now)
                    last = max(last, row_id)
            time.sleep(0.001)


@dataclass(frozen=True)
class Serving:
    """A running serve: its URL, its process id, where its journal is."""

    url: str
    pid: int
    journal: Path


@contextlib.contextmanager
def local_serve(tmp: Path) -> Iterator[Serving]:
    """llama-server and `serve --proxy` on loopback."""
    from support.llama import free_port, start_llama_server
    from support.serve_process import serve_config, start_serve
    from support.tiny_models import write_dense_model

    from tui.core.llama_binary import find_llama_server

    model = write_dense_model(tmp / "tiny.gguf")
    server = start_llama_server(find_llama_server(build=False), model, tmp / "server")
    serve = start_serve(serve_config(tmp, server, free_port(), store_bodies=False), tmp, "--proxy")
    try:
        yield Serving(serve.url, serve.proc.pid, tmp / "journal.sqlite3")
    finally:
        serve.stop()
        server.stop()


@contextlib.contextmanager
def netns_serve(tmp: Path) -> Iterator[Serving]:
    """llama-server and `serve --proxy` in a network namespace behind a veth pair."""
    from support.llama import free_port
    from support.netns import box_config, gpu_box, start_box_serve
    from support.tiny_models import write_dense_model

    from tui.core.llama_binary import find_llama_server

    model = write_dense_model(tmp / "tiny.gguf")
    with gpu_box() as box:
        config = box_config(tmp, find_llama_server(build=False), model, free_port(), autostart=True)
        port = free_port()
        proc = start_box_serve(box, config, port, tmp / "serve.out")
        try:
            yield Serving(f"http://{box.address}:{port}", proc.pid, tmp / "journal.sqlite3")
        finally:
            proc.terminate()
            with contextlib.suppress(Exception):
                proc.wait(20)


def wait_ready(serving: Serving, headers: dict[str, str]) -> str:
    """The agent-facing proxy URL once serve's proxy and llama-server answer a request."""
    deadline = time.monotonic() + 120
    with httpx.Client(trust_env=False, timeout=30, headers=headers) as http:
        while time.monotonic() < deadline:
            try:
                proxy_url = http.get(serving.url + "/_ctxbudget/info").json()["proxy_url"]
                body = {"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
                if proxy_url and http.post(proxy_url + "/v1/messages", json=body).status_code == 200:
                    return str(proxy_url)
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    raise SystemExit(f"serve at {serving.url} never answered a request through its proxy")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--netns", action="store_true", help="serve in a network namespace, over veth")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--gap", type=float, default=0.25, help="seconds between requests")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of the idle CPU phase")
    parser.add_argument(
        "--settle", type=float, default=35.0, help="quiet seconds before it (the poll slows after 30 s)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="feed-latency-") as tmp_text:
        tmp = Path(tmp_text)
        for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
            os.environ[variable] = str(tmp / variable.lower())
        os.environ["CTXBUDGET_CACHE_DIR"] = str(tmp / "cache")
        from tui.core.serve.auth import load_or_create_token

        token = load_or_create_token()  # serve (here or in the namespace) reads the same file
        # Beyond loopback the proxy takes the serve token as the agent's key (README: Remote GPU box).
        headers = {"Authorization": f"Bearer {token}", "x-api-key": token}
        starting = netns_serve(tmp) if args.netns else local_serve(tmp)
        clients: list[Client] = []
        with starting as serving:
            proxy_url = wait_ready(serving, headers)
            watcher = CommitWatcher(serving.journal)
            try:
                watcher.start()
                time.sleep(0.5)  # the warm-up row is committed before the clients connect
                clients = [Client(serving.url, token) for _ in range(args.clients)]
                for client in clients:
                    client.start()
                for client in clients:
                    client.ready.wait(30)
                time.sleep(1.0)
                first_row = max(watcher.commits, default=0)
                pid = serving.pid
                cpu0, wall0 = cpu_seconds(pid), time.monotonic()
                with httpx.Client(trust_env=False, timeout=60, headers=headers) as http:
                    for i in range(args.requests):
                        turn = [{"role": "user", "content": f"q{i}"}]
                        body = {"model": "m", "max_tokens": 4, "messages": turn}
                        http.post(proxy_url + "/v1/messages", json=body).raise_for_status()
                        time.sleep(args.gap)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and (
                    len([r for r in watcher.commits if r > first_row]) < args.requests
                    or any(len(c.arrivals) < len(watcher.commits) for c in clients)
                ):
                    time.sleep(0.05)
                cpu1, wall1 = cpu_seconds(pid), time.monotonic()
                time.sleep(args.settle)
                cpu1b, wall1b = cpu_seconds(pid), time.monotonic()
                time.sleep(args.idle)
                cpu2, wall2 = cpu_seconds(pid), time.monotonic()
            finally:
                for client in clients:
                    client.stop = True
                watcher.stop = True
        for row_id in [r for r in watcher.commits if r <= first_row]:
            del watcher.commits[row_id]  # warm-up rows came before the clients

    latencies = [
        (client.arrivals[row_id] - committed) * 1000
        for row_id, committed in watcher.commits.items()
        for client in clients
        if row_id in client.arrivals
    ]
    missing = len(watcher.commits) * len(clients) - len(latencies)
    result: dict[str, Any] = {
        "link": "veth (network namespace)" if args.netns else "loopback",
        "rows": len(watcher.commits),
        "clients": len(clients),
        "samples": len(latencies),
        "missing": missing,
        "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "serve_cpu_load_pct": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2),
        "serve_cpu_idle_pct": round(100 * (cpu2 - cpu1b) / (wall2 - wall1b), 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{result['link']}: {result['rows']} rows x {result['clients']} feed clients "
            f"({missing} missing): "
            f"commit -> client p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, "
            f"max {result['max_ms']} ms\nserve CPU with {len(clients)} clients: "
            f"{result['serve_cpu_load_pct']}% of a core while requests flow ({args.gap}s apart), "
            f"{result['serve_cpu_idle_pct']}% idle ({args.idle:.0f}s, after {args.settle:.0f}s quiet)"
        )
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
