"""Nothing lost when processes die: SIGKILL of the analysis worker and of the proxy; a full disk.

Each test counts requests the client saw completed against journal rows (exact: no loss and no
duplicate). The worker and the proxy are real subprocesses, killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.proxy_process import ProxyProcess, start_proxy
from test_journal_faults import flushed, process_proxy, rows, send
from test_proxy_fakes import FakeUpstream, client_session, fake_upstream, proxy_settings

from tui.core.anatomy.analyze import AnalysisResult
from tui.core.anatomy.exchange import Exchange
from tui.core.proxy.service import ProxyService

__all__ = ["fake_upstream"]

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def services() -> AsyncIterator[list[ProxyService]]:
    """Services to stop at the end of a test."""
    started: list[ProxyService] = []
    yield started
    for service in started:
        await service.stop()


@pytest.fixture
def proxies() -> Iterator[list[ProxyProcess]]:
    """Proxy subprocesses to stop (or reap) at the end of a test."""
    started: list[ProxyProcess] = []
    yield started
    for proxy in started:
        proxy.stop()


def worker_pid(service: ProxyService) -> int:
    """The analysis worker's process id."""
    pid = service.status()["worker_pid"]
    assert isinstance(pid, int)
    return pid


async def test_worker_killed_with_captures_in_flight_loses_nothing(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService]
) -> None:
    journal = tmp_path / "journal.sqlite3"
    service, problems = await process_proxy(fake_upstream.url, journal)
    services.append(service)
    first = worker_pid(service)
    os.kill(first, signal.SIGSTOP)  # captures pile up in the worker's pipe, as under load
    assert await send(service.url, 60, concurrency=16) == 60
    os.kill(first, signal.SIGKILL)  # everything handed to it is gone with it
    await flushed(service)
    status = service.status()
    assert rows(journal) == 60 == status["journaled"]
    assert status["worker_restarts"] == 1 and status["not_journaled"] == 0
    assert worker_pid(service) != first


async def test_worker_killed_repeatedly_under_concurrent_load_loses_nothing(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService]
) -> None:
    journal = tmp_path / "journal.sqlite3"
    service, _ = await process_proxy(fake_upstream.url, journal)
    services.append(service)
    kills = 0

    async def killer() -> None:
        nonlocal kills
        for _ in range(3):
            await asyncio.sleep(0.4)
            os.kill(worker_pid(service), signal.SIGKILL)
            kills += 1
            while service.status()["worker_restarts"] < kills:  # the next kill hits the new worker
                await asyncio.sleep(0.05)

    sent, _ = await asyncio.gather(send(service.url, 600, concurrency=32), killer())
    await flushed(service)
    status = service.status()
    assert sent == 600
    assert rows(journal) == 600 == status["journaled"]  # every row once: resent captures are not doubled
    assert status["worker_restarts"] == 3 and status["not_journaled"] == 0


async def test_proxy_killed_mid_burst_replays_its_spool_on_the_next_start(
    fake_upstream: FakeUpstream, tmp_path: Path, proxies: list[ProxyProcess]
) -> None:
    proxy = start_proxy(fake_upstream.url, tmp_path, extra_args=("--quiet",))
    proxies.append(proxy)
    health = await asyncio.to_thread(proxy.health)
    worker = health["worker_pid"]
    assert isinstance(worker, int)
    os.kill(worker, signal.SIGSTOP)  # the idle-priority worker falls behind
    assert await send(proxy.url, 80, concurrency=16) == 80
    while (await asyncio.to_thread(proxy.health))["spooled"] != 80:
        await asyncio.sleep(0.05)
    assert (await asyncio.to_thread(proxy.health))["journaled"] == 0
    proxy.proc.kill()  # kill -9 of the proxy: its memory, queue and unacknowledged captures are gone
    proxy.proc.wait(10)
    os.kill(worker, signal.SIGCONT)  # the orphaned worker journals what its pipe still held, then exits
    with contextlib.suppress(ChildProcessError):
        os.waitpid(worker, 0)
    while _alive(worker):
        await asyncio.sleep(0.05)
    journaled_by_orphan = rows(proxy.journal_path)
    again = start_proxy(fake_upstream.url, tmp_path, extra_args=("--quiet",))
    proxies.append(again)
    assert again.stop() == 0  # SIGTERM: the replayed captures are journaled before it exits
    assert rows(proxy.journal_path) == 80  # once each, whether the orphan had journaled them or not
    assert journaled_by_orphan <= 80
    assert not list((tmp_path / "journal.sqlite3-spool").glob("*.spool"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"
    return True


def _mount_tmpfs(directory: Path, size: str) -> bool:
    directory.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
            capture_output=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


async def test_full_disk_is_counted_and_reported_never_silent(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService]
) -> None:
    """On a real 2 MB tmpfs (mount needs root, which CI has); the SQLite-layer twin runs everywhere."""
    disk = tmp_path / "disk"
    # CI runs as root, as the project's machines do: a machine that cannot mount fails here, never skips.
    assert _mount_tmpfs(disk, "2m"), "mounting a 2 MB tmpfs failed (run the tests as root, as CI does)"
    try:
        journal = disk / "journal.sqlite3"
        service, problems = await process_proxy(fake_upstream.url, journal)
        services.append(service)
        assert await send(service.url, 5) == 5
        await flushed(service)
        filler = disk / "filler"
        with contextlib.suppress(OSError), open(filler, "wb") as f:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        assert await send(service.url, 60) == 60  # forwarding goes on
        await flushed(service)
        status = service.status()
        assert status["journaled"] + status["not_journaled"] == 65
        assert status["not_journaled"] > 0 and problems.saw("disk is full")
        assert rows(journal) == status["journaled"]
        async with client_session() as session, session.get(service.url + "/_ctxbudget/metrics") as r:
            metrics = await r.text()
        counted = float(status["journaled"])
        assert f'ctxbudget_requests_total{{kind="other",status="200"}} {counted}' in metrics
        filler.unlink()
        assert await send(service.url, 5) == 5
        await flushed(service)
        after = service.status()
        assert after["journaled"] == status["journaled"] + 5 and after["journal_problem"] is None
        await service.stop()
        services.clear()
        assert rows(journal) == after["journaled"]
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False, capture_output=True)


async def test_full_journal_is_counted_and_reported(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService]
) -> None:
    """The same guarantee without a mount: SQLite's own SQLITE_FULL, from a page limit on the journal."""
    from test_proxy_fakes import proxy_settings

    from tui.core.analysis.sinks import NullAnalyzer
    from tui.core.journal.writer import Journal

    journal = tmp_path / "journal.sqlite3"
    service = ProxyService(
        proxy_settings(fake_upstream.url, journal), analyzer_factory=NullAnalyzer, analysis="thread",
        rewrite=False,
    )
    seen: list[str | None] = []
    service.on_problem = seen.append
    await service.start()
    services.append(service)
    assert await send(service.url, 3) == 3
    await flushed(service)
    assert isinstance(service.journal, Journal)
    conn = service.journal._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    assert await send(service.url, 40) == 40
    await flushed(service)
    status = service.status()
    assert status["journaled"] + status["not_journaled"] == 43 and status["not_journaled"] > 0
    assert any(text and "full" in text for text in seen)
    assert rows(journal) == status["journaled"]
    async with client_session() as session, session.get(service.url + "/_ctxbudget/metrics") as r:
        metrics = await r.text()
    counted = float(status["journaled"])
    assert f'ctxbudget_requests_total{{kind="other",status="200"}} {counted}' in metrics


class DiesOnPoison:
    """Analyzer factory and analyzer: the worker process kills itself on a path containing "poison"."""

    def __call__(self) -> DiesOnPoison:
        return self

    def analyze(self, exchange: Exchange) -> AnalysisResult:
        """Die on poison, pass everything else."""
        if "poison" in exchange.path:
            os.kill(os.getpid(), signal.SIGKILL)
        return AnalysisResult(unparsed_reason="passed")


async def test_a_capture_that_kills_the_worker_is_given_up_and_counted(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # the worker unpickles DiesOnPoison
    journal = tmp_path / "journal.sqlite3"
    service = ProxyService(
        proxy_settings(fake_upstream.url, journal), analyzer_factory=DiesOnPoison(), analysis="process",
        rewrite=False,
    )
    seen: list[str | None] = []
    service.on_problem = seen.append
    await service.start()
    services.append(service)
    async with client_session() as session:
        for path in ["a", "b", "poison", "c", "d"]:
            async with session.post(f"{service.url}/v1/messages?{path}", data=b"{}") as r:
                assert r.status == 200
    await flushed(service)
    status = service.status()
    assert rows(journal) == 4 == status["journaled"]
    assert status["not_journaled"] == 1 and status["worker_restarts"] == 3
    assert any(text and "died 3 times" in text for text in seen)
