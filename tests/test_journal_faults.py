"""Nothing lost in the journal's own faults: lock, deletion, corruption, odd headers; and private files.

Each test counts forwarded requests against journal rows (a recording fake upstream, the real analysis
worker process, real SQLite, real subprocesses where another process is the point).
"""

from __future__ import annotations

import asyncio
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from test_proxy_fakes import JSON_BODY, FakeUpstream, client_session, fake_upstream, proxy_settings

from tui.core.analysis.sinks import NullAnalyzer
from tui.core.journal.reader import JournalReader
from tui.core.proxy.service import ProxyService

__all__ = ["fake_upstream"]

pytestmark = pytest.mark.timeout(120)


class ProblemLog:
    """What the service reported through on_problem, in order."""

    def __init__(self) -> None:
        self.texts: list[str | None] = []

    def __call__(self, text: str | None) -> None:
        self.texts.append(text)

    def saw(self, needle: str) -> bool:
        """Whether any report contains `needle`."""
        return any(t is not None and needle in t for t in self.texts)


async def process_proxy(upstream: str, journal: Path) -> tuple[ProxyService, ProblemLog]:
    """A started ProxyService journaling through the worker process (analysis off: rows only)."""
    service = ProxyService(
        proxy_settings(upstream, journal), analyzer_factory=NullAnalyzer, analysis="process", rewrite=False
    )
    problems = ProblemLog()
    service.on_problem = problems
    await service.start()
    return service, problems


async def send(url: str, n: int, concurrency: int = 8) -> int:
    """POST n requests, `concurrency` at a time; how many completed with the full body."""
    done = 0
    gate = asyncio.Semaphore(concurrency)
    async with client_session() as session:

        async def one(i: int) -> None:
            nonlocal done
            async with gate, session.post(f"{url}/v1/messages?i={i}", data=b'{"model":"m"}') as r:
                if r.status == 200 and await r.read() == JSON_BODY:
                    done += 1

        await asyncio.gather(*(one(i) for i in range(n)))
    return done


async def flushed(service: ProxyService) -> None:
    """Wait until every capture is acknowledged, and the loop has delivered what came back."""
    assert await asyncio.to_thread(service.flush, 60.0)
    await asyncio.sleep(0.05)


def rows(journal: Path) -> int:
    """Requests with their final row in a journal file (a provisional in-flight row is not one)."""
    reader = JournalReader(journal)
    try:
        return reader.count(finished=True)
    finally:
        reader.close()


@pytest.fixture
async def services() -> AsyncIterator[list[ProxyService]]:
    """Services to stop at the end of a test."""
    started: list[ProxyService] = []
    yield started
    for service in started:
        await service.stop()


async def test_locked_journal_is_retried_not_dropped(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService]
) -> None:
    journal = tmp_path / "journal.sqlite3"
    service, problems = await process_proxy(fake_upstream.url, journal)
    services.append(service)
    assert await send(service.url, 3) == 3
    await flushed(service)
    locker = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sqlite3, sys, time\n"
            f"c = sqlite3.connect({str(journal)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n"
            "c.execute('ROLLBACK')\n",
        ],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"
        assert await send(service.url, 20) == 20  # forwarding does not wait for the journal
        while not problems.saw("locked"):  # the worker reports the lock after its busy timeout
            await asyncio.sleep(0.1)
        assert service.status()["journal_problem"] is not None
        assert rows(journal) == 3
    finally:
        assert locker.stdin is not None
        locker.stdin.write(b"\n")
        locker.stdin.close()
        locker.wait(10)
    await flushed(service)
    status = service.status()
    assert rows(journal) == 23 == status["journaled"]
    assert status["not_journaled"] == 0 and status["journal_problem"] is None


@pytest.mark.parametrize("how", ["deleted", "replaced"])
async def test_journal_deleted_or_replaced_is_reopened(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService], how: str
) -> None:
    journal = tmp_path / "journal.sqlite3"
    service, problems = await process_proxy(fake_upstream.url, journal)
    services.append(service)
    assert await send(service.url, 5) == 5
    await flushed(service)
    moved = tmp_path / "old.sqlite3"
    if how == "deleted":
        journal.unlink()
    else:
        journal.rename(moved)  # the path now names nothing; then a fresh file takes its place
        journal.write_bytes(b"")
    await asyncio.sleep(1.1)  # the writer looks at the path at most once a second
    assert await send(service.url, 7) == 7
    await flushed(service)
    assert rows(journal) == 7
    assert problems.saw("deleted or replaced")
    assert service.status()["journaled"] == 12
    if how == "replaced":
        assert rows(moved) == 5


async def test_non_utf8_header_values_are_journaled(
    tmp_path: Path, services: list[ProxyService]
) -> None:
    received: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        ))
        await reader.readexactly(length)
        received.append(head)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Reply: r\xe9ponse \xff\r\n"
            + f"Content-Length: {len(JSON_BODY)}\r\nConnection: close\r\n\r\n".encode() + JSON_BODY
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    journal = tmp_path / "journal.sqlite3"
    service, _ = await process_proxy(f"http://127.0.0.1:{port}", journal)
    services.append(service)
    answers = []
    for i in range(3):
        reader, writer = await asyncio.open_connection("127.0.0.1", service.port)
        writer.write(
            f"POST /v1/messages?i={i} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n".encode()
            + b"X-Odd: caf\xe9 \xff\xfe\r\nConnection: close\r\n\r\n{}"
        )
        await writer.drain()
        answers.append(await reader.read())
        writer.close()
    await flushed(service)
    server.close()
    # Forwarded as received both ways: the upstream gets the client's bytes, the client the upstream's.
    assert len(received) == 3
    assert all(b"\r\nX-Odd: caf\xe9 \xff\xfe\r\n" in head for head in received)
    assert all(a.startswith(b"HTTP/1.1 200") and a.endswith(JSON_BODY) for a in answers)
    assert all(b"\r\nX-Reply: r\xe9ponse \xff\r\n" in a for a in answers)
    assert rows(journal) == 3 == service.status()["journaled"]
    import sqlite3

    with sqlite3.connect(journal) as conn:
        stored = conn.execute("SELECT request_headers, response_headers FROM requests").fetchall()
    request_headers, response_headers = (orjson.loads(x) for x in stored[0])
    assert request_headers["x-odd"] == "caf\\xe9 \\xff\\xfe"
    assert response_headers["x-reply"] == "r\\xe9ponse \\xff"


async def test_corrupt_journal_is_moved_aside_and_a_new_one_started(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService]
) -> None:
    journal = tmp_path / "journal.sqlite3"
    garbage = b"this is not a database, it is a shopping list\n" * 100
    journal.write_bytes(garbage)
    service, problems = await process_proxy(fake_upstream.url, journal)
    services.append(service)
    assert await send(service.url, 4) == 4
    await flushed(service)
    aside = list(tmp_path.glob("journal.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == garbage
    assert problems.saw(str(aside[0]))
    assert rows(journal) == 4


async def test_journal_files_are_private(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService]
) -> None:
    data = tmp_path / "data" / "ctxbudget"
    journal = data / "journal.sqlite3"
    service, _ = await process_proxy(fake_upstream.url, journal)
    services.append(service)
    assert await send(service.url, 2) == 2
    await flushed(service)
    spool = data / "journal.sqlite3-spool"
    names = ["journal.sqlite3", "journal.sqlite3-wal", "journal.sqlite3-shm", "analysis-worker.log"]
    files = [data / name for name in names]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert modes == dict.fromkeys(modes, 0o600)
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    segments = list(spool.glob("*.spool"))
    assert segments and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in segments)


def test_existing_world_readable_journal_is_made_private(tmp_path: Path) -> None:
    from tui.core.journal.writer import Journal

    journal = tmp_path / "journal.sqlite3"
    Journal(journal).close()
    journal.chmod(0o644)
    Journal(journal).close()
    assert stat.S_IMODE(journal.stat().st_mode) == 0o600


async def test_spool_holds_no_secret_headers(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService]
) -> None:
    import os
    import signal

    journal = tmp_path / "journal.sqlite3"
    service, _ = await process_proxy(fake_upstream.url, journal)
    services.append(service)
    worker = service.status()["worker_pid"]
    assert isinstance(worker, int)
    os.kill(worker, signal.SIGSTOP)  # the capture stays in the spool while we look
    try:
        async with client_session() as session:
            headers = {"x-api-key": "sk-spool-secret", "Authorization": "Bearer sk-spool-bearer"}
            async with session.post(service.url + "/v1/messages", data=b'{"marker":"m4rk"}', headers=headers):
                pass
        while service.status()["spooled"] != 1:
            await asyncio.sleep(0.02)
        spooled = b"".join(p.read_bytes() for p in (tmp_path / "journal.sqlite3-spool").glob("*.spool"))
        assert b"m4rk" in spooled  # the capture is there (bodies are kept until journaled) ...
        assert b"sk-spool-secret" not in spooled and b"sk-spool-bearer" not in spooled  # ... its secrets not
    finally:
        os.kill(worker, signal.SIGCONT)
    await flushed(service)
    assert rows(journal) == 1


async def test_journal_locked_at_start_delays_nothing_but_the_start(
    fake_upstream: FakeUpstream, tmp_path: Path, services: list[ProxyService]
) -> None:
    from tui.core.journal.writer import Journal

    journal = tmp_path / "journal.sqlite3"
    Journal(journal).close()
    locker = subprocess.Popen(
        [
            sys.executable, "-c",
            "import sqlite3, sys\n"
            f"c = sqlite3.connect({str(journal)!r}, isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n",
        ],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline() == b"locked\n"
        service, problems = await process_proxy(fake_upstream.url, journal)  # SQLite's busy timeout, then up
        services.append(service)
        assert problems.saw("locked")
        assert await send(service.url, 6) == 6
    finally:
        assert locker.stdin is not None
        locker.stdin.write(b"\n")
        locker.stdin.close()
        locker.wait(10)
    await flushed(service)
    assert rows(journal) == 6 == service.status()["journaled"]
    assert service.status()["journal_problem"] is None
