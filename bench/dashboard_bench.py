"""Dashboard speed and weight: idle CPU and RSS, journal-row-to-table latency, start to first frame.

Run:  python bench/dashboard_bench.py [--only idle|latency|first-frame] [--idle-seconds 20]
      [--settle 35] [--rows 10000]

Every child runs the real command line (`tui.cli.main`, what the `ctxbudget` script calls, with a
config file) on a 100x36 pseudo-terminal (the real terminal driver: frames are encoded and written),
with a hook on the terminal write that reports frames; so does the bare Textual baseline.

1. idle: the real dashboard (`ctxbudget`: LiveDriver with the embedded proxy, log tailer,
   server poller every [server] poll_interval, GPU sampler) runs in a child process against a
   real llama-server (tiny model from tests/support) with no traffic; CPU seconds and RSS of the child
   are read from /proc over the window, after a warm-up.
2. latency: `ctxbudget --attach` runs in a child; this process appends journal rows with
   the real Journal writer; the child reports the first frame that shows each row (same clock).
3. first frame: `ctxbudget --attach` opens a journal of N rows; the time from spawning the process to
   the first frame that shows rows is measured (interpreter start and imports included).
Targets: idle CPU <= 1% of one core, RSS <= 150 MB, latency <= 250 ms, first frame <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import itertools
import json
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CLK_TCK = os.sysconf("SC_CLK_TCK")
TERMINALS: dict[int, int] = {}  # child pid -> its pseudo-terminal's master side (type keys into it)


# --- child modes ---------------------------------------------------------------------------------


def child_app(
    config: str, attach: bool, report: str, watch_rows: bool, proxy_variant: str = "process"
) -> None:
    """Run `ctxbudget [--attach]` through the real CLI entry point; write frame events to `report`.

    The hooks go in where the CLI imports the UI (right after it starts reading the journal's newest
    rows), so imports happen in the same order as for a user.
    """
    from tui.core.feed.live import LiveDriver

    out = open(report, "a", buffering=1)  # noqa: SIM115 - lives as long as the process

    def emit(event: str, **data: Any) -> None:
        out.write(json.dumps({"event": event, "t": time.time(), **data}) + "\n")

    prefetch = LiveDriver.prefetch_backlog

    def prefetch_then_hook(driver: LiveDriver) -> None:
        prefetch(driver)
        install_hooks(emit, watch_rows)

    LiveDriver.prefetch_backlog = prefetch_then_hook  # type: ignore[method-assign]
    if proxy_variant in ("thread", "loop"):
        LiveDriver._run_proxy = in_process_proxy(proxy_variant == "thread")  # type: ignore[method-assign]
    if proxy_variant == "process-nice":
        run_proxy = LiveDriver._run_proxy

        async def run_then_renice(driver: Any, feed: Any) -> None:
            task = asyncio.ensure_future(run_proxy(driver, feed))
            while not driver.proxy_url and not task.done():
                await asyncio.sleep(0.05)
            os.setpriority(os.PRIO_PROCESS, 0, 5)  # this (UI) thread only; the proxy process keeps 0
            await task

        LiveDriver._run_proxy = run_then_renice  # type: ignore[method-assign]
    from tui.core.feed.feed import DashboardFeed

    set_status = DashboardFeed.set_status

    def report_status(feed: DashboardFeed, status: Any) -> None:
        emit("status", source=status.source, health=status.health, message=status.message)
        set_status(feed, status)

    DashboardFeed.set_status = report_status  # type: ignore[method-assign]
    emit("started")
    from tui.cli import main

    main(["--config", config, *(["--attach"] if attach else [])])


def in_process_proxy(own_thread: bool) -> Callable[..., Any]:
    """The alternatives to the proxy process, for comparison: the ProxyService on its own thread and loop,
    or on the UI's loop (how the dashboard ran it before the proxy process)."""
    from tui.core.feed.updates import SourceStatus
    from tui.core.proxy.service import ProxyService

    async def run_proxy(driver: Any, feed: Any) -> None:
        service = ProxyService(driver.settings, journal_path=driver.journal_path)
        if own_thread:
            loop = asyncio.new_event_loop()
            started = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(loop)
                loop.run_until_complete(service.start())
                started.set()
                loop.run_forever()

            threading.Thread(target=serve, name="proxy-loop", daemon=True).start()
            await asyncio.to_thread(started.wait)
        else:
            await service.start()
        driver.proxy_url = service.url
        feed.set_status(SourceStatus("proxy", "ok", f"proxy on {service.url}"))
        await asyncio.Event().wait()

    return run_proxy


def install_hooks(emit: Callable[..., None], watch_rows: bool) -> None:
    """Report frames as they are written to the terminal: the first one, and the first showing each row."""
    from tui.ui.app import CtxBudgetApp
    from tui.ui.widgets.requests_table import RequestsTable

    reported: set[int] = set()
    display = CtxBudgetApp._display
    state = {"frames": 0}

    def displayed(app: CtxBudgetApp, screen: Any, renderable: Any) -> None:
        display(app, screen, renderable)  # the terminal write
        if renderable is None:
            return
        state["frames"] += 1
        if state["frames"] == 1:
            emit("first_frame")
        if not watch_rows or screen is not app.main_screen:
            return
        table = screen.query_one(RequestsTable)
        if table.virtual_size.height <= 1:  # rows are laid out (and so painted) once it has a height
            return
        new = set(table.by_id) - reported
        if new:
            if not reported:
                emit("first_rows_frame", rows=table.row_count)
            for row_id in new:
                emit("row_visible", id=row_id)
            reported.update(new)

    CtxBudgetApp._display = displayed  # type: ignore[method-assign]


def write_config(settings: dict[str, dict[str, Any]], path: Path) -> Path:
    """A config.toml holding `settings` (tables of strings, numbers and booleans)."""
    lines: list[str] = []
    for table, values in settings.items():
        lines.append(f"[{table}]")
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def child_baseline(report: str, stay: bool = False) -> None:
    """A bare Textual app (Static, DataTable, Footer): the floor for first frame and idle CPU here."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable, Footer, Static

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield Static("hello")
            yield DataTable()
            yield Footer()

        def _display(self, screen: Any, renderable: Any) -> None:
            super()._display(screen, renderable)
            if renderable is not None and not Path(report).exists():
                Path(report).write_text(json.dumps({"event": "first_rows_frame", "t": time.time()}) + "\n")
                if not stay:
                    self.exit()

    Bare().run()


# --- helpers ------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (the dashboard, its proxy process, the analysis worker)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == pid:
                    found += descendants(int(entry.name))
    return found


def tree_stats(pid: int) -> tuple[float, int]:
    """CPU seconds and RSS bytes summed over `pid` and its descendants."""
    cpu, rss = 0.0, 0
    for member in descendants(pid):
        with contextlib.suppress(OSError):
            c, r = proc_stats(member)
            cpu, rss = cpu + c, rss + r
    return cpu, rss


def proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user+system) and RSS bytes of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) * 1024
    return cpu, rss


def on_terminal(args: list[str]) -> subprocess.Popen[bytes]:
    """Run `python bench/dashboard_bench.py ARGS` on a 100x36 pseudo-terminal whose output is drained.

    A real terminal driver, so each frame is encoded and written as it would be for a user.
    """
    # BENCH_STDERR=FILE keeps what the children write to stderr (Textual's frames, and a traceback).
    stderr_path = os.environ.get("BENCH_STDERR")
    stderr: Any = open(stderr_path, "ab") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 36, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, __file__, *args],
        stdin=slave,
        stdout=slave,
        stderr=stderr,
        cwd=ROOT,
        env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "100", "LINES": "36"},
        start_new_session=True,
    )
    os.close(slave)
    TERMINALS[proc.pid] = master

    def drain() -> None:
        with contextlib.suppress(OSError):
            while os.read(master, 65536):
                pass
        TERMINALS.pop(proc.pid, None)
        os.close(master)

    threading.Thread(target=drain, daemon=True).start()
    return proc


def spawn(
    settings: dict[str, Any],
    attach: bool,
    report: Path,
    watch: bool = True,
    proxy_variant: str = "process",
) -> subprocess.Popen[bytes]:
    config = write_config(settings, report.with_suffix(".toml"))
    return on_terminal(
        ["--child-app", str(config), "1" if attach else "0", str(report), "1" if watch else "0"]
        + [proxy_variant]
    )


def read_events(report: Path) -> list[dict[str, Any]]:
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text().splitlines() if line.strip()]


def wait_event(report: Path, name: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        for event in read_events(report):
            if event["event"] == name:
                return event
        time.sleep(0.01)
    raise TimeoutError(f"no {name} event in {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sample_result() -> Any:
    """An AnalysisResult with a real anatomy (the newest main request of the demo recording)."""
    from tui.core.anatomy.analyze import AnalysisResult
    from tui.core.feed.codec import record_from_json
    from tui.core.feed.recording import load_recording

    entry = [e for e in load_recording().entries if e.type == "record" and e.data["kind"] == "main"][-1]
    record = record_from_json(entry.data)
    return AnalysisResult(
        session_id=record.session_id,
        kind="main",
        model=record.model,
        dialect=record.dialect,
        stream=True,
        anatomy=record.anatomy,
        usage=record.usage,
        cache_break=record.cache_break,
    )


def exchange(ts: float) -> Any:
    from tui.core.anatomy.exchange import Exchange

    return Exchange("POST", "/v1/messages?beta=true", status=200, started=ts, ttfb_ms=120.0, total_ms=900.0)


# --- benchmarks ---------------------------------------------------------------------------------


def bench_idle(seconds: float, tmp: Path, settle: float = 5.0) -> dict[str, float]:
    from support.llama import free_port, start_llama_server
    from support.tiny_models import write_dense_model

    from tui.core.llama_binary import find_llama_server

    model = write_dense_model(tmp / "tiny.gguf")
    server = start_llama_server(find_llama_server(build=True), model, tmp / "server")
    try:
        settings = {
            "proxy": {"listen": f"127.0.0.1:{free_port()}", "upstream": server.url},
            "journal": {"path": str(tmp / "idle.sqlite3")},
            "server": {"url": server.url, "log_file": str(server.log_path), "poll_interval": 2.0},
        }
        report = tmp / "idle.jsonl"
        proc = spawn(settings, attach=False, report=report, watch=False)
        try:
            wait_event(report, "started")
            # Warm-up (imports, first polls, first frames); past 30 s without traffic the dashboard polls
            # less often, which is the state it spends its day in next to an idle agent.
            time.sleep(settle)
            cpu0, _ = proc_stats(proc.pid)
            tree0, _ = tree_stats(proc.pid)
            t0 = time.monotonic()
            rss_max = tree_rss_max = 0
            while time.monotonic() - t0 < seconds:
                time.sleep(0.5)
                rss_max = max(rss_max, proc_stats(proc.pid)[1])
                tree_rss_max = max(tree_rss_max, tree_stats(proc.pid)[1])
            cpu1, _ = proc_stats(proc.pid)
            tree1, _ = tree_stats(proc.pid)
            elapsed = time.monotonic() - t0
        finally:
            stop(proc)
    finally:
        server.stop()
    bare_report = tmp / "bare-idle.jsonl"
    bare = on_terminal(["--child-baseline", str(bare_report), "stay"])
    try:
        wait_event(bare_report, "first_rows_frame")
        time.sleep(5.0)
        b0, _ = proc_stats(bare.pid)
        b_start = time.monotonic()
        time.sleep(seconds)
        b1, bare_rss = proc_stats(bare.pid)
        bare_elapsed = time.monotonic() - b_start
    finally:
        stop(bare)
    return {
        "idle_cpu_pct": 100 * (cpu1 - cpu0) / elapsed,
        "idle_cpu_pct_with_proxy": 100 * (tree1 - tree0) / elapsed,
        "rss_mb_with_proxy": tree_rss_max / 1e6,
        "bare_textual_idle_cpu_pct": 100 * (b1 - b0) / bare_elapsed,
        "rss_mb": rss_max / 1e6,
        "bare_textual_rss_mb": bare_rss / 1e6,
        "window_s": elapsed,
    }


def bench_latency(n: int, tmp: Path) -> dict[str, float]:
    from tui.core.journal.writer import Journal

    path = tmp / "latency.sqlite3"
    journal = Journal(path)
    result = sample_result()
    journal.append(exchange(time.time()), result)
    settings = {
        "journal": {"path": str(path)},
        "server": {"url": "http://127.0.0.1:9", "log_file": "", "poll_interval": 2.0},
        "gpu": {"enabled": False},
    }
    report = tmp / "latency.jsonl"
    proc = spawn(settings, attach=True, report=report)
    latencies: list[float] = []
    try:
        wait_event(report, "first_rows_frame")
        for _ in range(n):
            time.sleep(0.3)
            appended = time.time()
            row_id = journal.append(exchange(appended), result)
            deadline = time.time() + 5
            while time.time() < deadline:
                hit = [e for e in read_events(report) if e["event"] == "row_visible" and e["id"] == row_id]
                if hit:
                    latencies.append((hit[0]["t"] - appended) * 1000)
                    break
                time.sleep(0.002)
    finally:
        stop(proc)
        journal.close()
    return {
        "latency_ms_median": statistics.median(latencies),
        "latency_ms_max": max(latencies),
        "samples": float(len(latencies)),
    }


def bench_first_frame(rows: int, tmp: Path) -> dict[str, float]:
    from tui.core.journal.writer import Journal

    path = tmp / "big.sqlite3"
    journal = Journal(path, max_rows=max(rows * 2, 200_000))
    result = sample_result()
    now = time.time() - rows
    for i in range(rows):
        journal.append(exchange(now + i), result)
    journal.close()
    settings = {
        "journal": {"path": str(path)},
        "server": {"url": "http://127.0.0.1:9", "log_file": "", "poll_interval": 2.0},
        "gpu": {"enabled": False},
    }
    times: list[float] = []
    any_frame: list[float] = []
    bare: list[float] = []
    for attempt in range(5):  # interleaved with a bare Textual app, so machine load hits both alike
        report = tmp / f"first{attempt}.jsonl"
        spawned = time.time()
        proc = spawn(settings, attach=True, report=report)
        try:
            times.append(wait_event(report, "first_rows_frame")["t"] - spawned)
            any_frame.append(wait_event(report, "first_frame")["t"] - spawned)
        finally:
            stop(proc)
        report = tmp / f"bare{attempt}.jsonl"
        spawned = time.time()
        proc = on_terminal(["--child-baseline", str(report)])
        try:
            bare.append(wait_event(report, "first_rows_frame")["t"] - spawned)
        finally:
            stop(proc)
    return {
        "first_frame_s_median": statistics.median(any_frame),
        "first_rows_frame_s_median": statistics.median(times),
        "first_rows_frame_s_max": max(times),
        "bare_textual_s_median": statistics.median(bare),
        "first_rows_frame_ratio": statistics.median(times) / statistics.median(bare),
        "rows": rows,
    }


KEY_CYCLE = ("l", "s", "m", "m", "\r", "\x1b", "?", "\x1b")  # panes, detail and back, help and back


def press_keys(pid: int, every: float, stop_event: threading.Event) -> int:
    """Type KEY_CYCLE into the dashboard's terminal every `every` seconds until stopped; keys pressed."""
    pressed = 0
    while not stop_event.wait(every):
        fd = TERMINALS.get(pid)
        if fd is None:
            break
        with contextlib.suppress(OSError):
            os.write(fd, KEY_CYCLE[pressed % len(KEY_CYCLE)].encode())
            pressed += 1
    return pressed


def wait_listening(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port} after {timeout}s")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_ttfb_keys(
    rounds: int, tmp: Path, variants: tuple[str, ...], key_interval: float = 0.2
) -> dict[str, float]:
    """Added TTFB through the dashboard's proxy while keys are pressed every 200 ms, next to the headless
    proxy (`ctxbudget proxy`) in the same run: direct, headless and dashboard requests interleaved."""
    sys.path.insert(0, str(ROOT / "bench"))
    import proxy_bench
    from support.llama import free_port

    body = proxy_bench.claude_code_body()
    upstream_port = free_port()
    upstream = proxy_bench.spawn("--role", "upstream", "--port", str(upstream_port))
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    headless_port = free_port()
    headless_config = write_config({"gpu": {"enabled": False}}, tmp / "headless.toml")
    headless = subprocess.Popen(
        [sys.executable, "-m", "tui", "--config", str(headless_config), "proxy", "--quiet",
         "--listen", f"127.0.0.1:{headless_port}", "--upstream", upstream_url,
         "--journal", str(tmp / "headless.sqlite3")],
        # A session of its own, as when started from another terminal: with autogroup scheduling on, a
        # proxy sharing the bench client's group (and not the dashboard's) would be favoured at the tail.
        cwd=ROOT, stdout=subprocess.DEVNULL, start_new_session=True,
    )
    results: dict[str, float] = {}
    try:
        wait_listening(headless_port)
        for variant in variants:
            port = free_port()
            settings = {
                "proxy": {"listen": f"127.0.0.1:{port}", "upstream": upstream_url},
                "journal": {"path": str(tmp / f"dash-{variant}.sqlite3")},
                "server": {"url": "http://127.0.0.1:9", "log_file": "", "poll_interval": 2.0},
                "gpu": {"enabled": False},
            }
            report = tmp / f"ttfb-{variant}.jsonl"
            proc = spawn(settings, attach=False, report=report, watch=False, proxy_variant=variant)
            stop_keys = threading.Event()
            try:
                wait_event(report, "first_frame")
                wait_listening(port)
                if key_interval > 0:
                    presser = threading.Thread(
                        target=press_keys, args=(proc.pid, key_interval, stop_keys), daemon=True
                    )
                    presser.start()
                try:
                    samples = asyncio.run(interleaved(rounds, body, upstream_port, headless_port, port))
                except SystemExit:
                    print(f"bench: dashboard exit code {proc.poll()}", file=sys.stderr)
                    for event in read_events(report):
                        if event["event"] == "status":
                            print(f"bench: dashboard status {event}", file=sys.stderr)
                    raise
            finally:
                stop_keys.set()
                stop(proc)
            for name in ("headless", "dashboard"):
                added = [p - d for p, d in zip(samples[name], samples["direct"], strict=True)]
                results[f"{variant}_{name}_added_ttfb_p50_ms"] = percentile(added, 0.5)
                results[f"{variant}_{name}_added_ttfb_p99_ms"] = percentile(added, 0.99)
            results[f"{variant}_p99_gap_ms"] = (
                results[f"{variant}_dashboard_added_ttfb_p99_ms"]
                - results[f"{variant}_headless_added_ttfb_p99_ms"]
            )
    finally:
        headless.terminate()
        headless.wait(timeout=15)
        upstream.kill()
        upstream.wait()
    results["ttfb_rounds"] = float(rounds)
    return results


async def interleaved(
    rounds: int, body: bytes, direct: int, headless: int, dashboard: int
) -> dict[str, list[float]]:
    """TTFB (ms) of streamed requests, interleaved in every order so drift and position effects cancel."""
    import proxy_bench

    conns = {"direct": proxy_bench.Conn(direct), "headless": proxy_bench.Conn(headless),
             "dashboard": proxy_bench.Conn(dashboard)}
    samples: dict[str, list[float]] = {name: [] for name in conns}
    for name in conns:  # warm the connections and the proxies' first-request paths
        await conns[name].request(body, stream=True)
    ports = {"direct": direct, "headless": headless, "dashboard": dashboard}
    errors = dict.fromkeys(conns, 0)
    # Every order in turn: the first request after the pause pays a wake-up, so each target must be
    # first, middle and last equally often (A B C / C B A alone left the middle one never first).
    orders = list(itertools.permutations(conns))
    for i in range(rounds):
        got: dict[str, float] = {}
        for name in orders[i % len(orders)]:
            try:
                got[name] = (await conns[name].request(body, stream=True))[0]
            except (ConnectionError, asyncio.IncompleteReadError) as exc:
                errors[name] += 1
                if errors[name] <= 3:
                    print(f"bench: {name} request failed ({exc!r}); reconnecting", file=sys.stderr)
                conns[name] = proxy_bench.Conn(ports[name])
                if errors[name] > 20:
                    raise SystemExit(f"bench: the {name} proxy stopped answering") from exc
        if len(got) == len(conns):  # only complete rounds, so the differences stay paired
            for name, ttfb in got.items():
                samples[name].append(ttfb)
        await asyncio.sleep(0.01)
    if any(errors.values()):
        print(f"bench: failed requests {errors}", file=sys.stderr)
    return samples


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-baseline":
        child_baseline(sys.argv[2], stay=len(sys.argv) > 3)
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--child-app":
        child_app(sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5] == "1", sys.argv[6])
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument(
        "--settle", type=float, default=35.0, help="seconds without traffic before the idle window starts"
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--ttfb-rounds", type=int, default=1200)
    parser.add_argument("--key-interval", type=float, default=0.2, help="ttfb-keys: 0 presses no keys")
    parser.add_argument(
        "--proxy-variants",
        default="process",
        help="ttfb-keys: dashboard proxy runners, comma-separated: process (shipped), thread, loop (old)",
    )
    parser.add_argument(
        "--only", choices=("first-frame", "latency", "idle", "ttfb-keys"), help="run one benchmark"
    )
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ctxbudget-bench-") as tmp:
        if args.only in (None, "first-frame"):
            results.update(bench_first_frame(args.rows, Path(tmp)))
        if args.only in (None, "latency"):
            results.update(bench_latency(args.latency_samples, Path(tmp)))
        if args.only in (None, "idle"):
            results.update(bench_idle(args.idle_seconds, Path(tmp), args.settle))
        if args.only in (None, "ttfb-keys"):
            variants = tuple(v for v in args.proxy_variants.split(",") if v)
            results.update(bench_ttfb_keys(args.ttfb_rounds, Path(tmp), variants, args.key_interval))
    for key, value in results.items():
        print(f"{key:40} {value:10.3f}")
    targets = {
        "idle_cpu_pct": 1.0,
        "rss_mb": 150.0,
        "latency_ms_median": 250.0,
        "first_frame_s_median": 1.0,
        "first_rows_frame_s_median": 1.0,
        "process_p99_gap_ms": 2.0,
    }
    for key, limit in targets.items():
        if key in results:
            print(f"{key:40} {'ok' if results[key] <= limit else 'OVER'} (target <= {limit:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
