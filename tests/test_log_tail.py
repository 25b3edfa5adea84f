"""Tailer tests on real files: partial lines, colours, truncation, rotation, deletion, big backlogs."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import tracemalloc
from pathlib import Path

from tui.core.logs.tail import LineSplitter, LogTailer, read_lines, stream_batches

DATA = Path(__file__).parent / "data" / "logs"


def append(path: Path, data: str | bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)


def drain(tailer: LogTailer, rounds: int = 3) -> list[str]:
    out: list[str] = []
    for _ in range(rounds):
        out.extend(tailer.read_available())
    return out


def test_partial_lines_are_joined_until_the_newline(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("")
    tailer = LogTailer(log, use_watcher=False)
    assert drain(tailer) == []
    append(log, "0.00.001.000 I srv  update_slots: all sl")
    assert drain(tailer) == []
    append(log, "ots are idle\nsecond")
    assert drain(tailer) == ["0.00.001.000 I srv  update_slots: all slots are idle"]
    append(log, " line\n")
    assert drain(tailer) == ["second line"]
    tailer.close()


def test_colours_crlf_and_bad_bytes_are_cleaned(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("")
    tailer = LogTailer(log, use_watcher=False)
    append(log, b"\x1b[33m0.00.001.000 W \x1b[0msrv  x: warn\x1b[0m\r\nbad \xff\xfe bytes\n")
    assert drain(tailer) == ["0.00.001.000 W srv  x: warn", "bad \ufffd\ufffd bytes"]
    tailer.close()


def test_starts_at_the_end_with_a_bounded_backlog(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(1000)))
    tailer = LogTailer(log, backlog_lines=5, use_watcher=False)
    assert drain(tailer) == [f"line {i}" for i in range(995, 1000)]
    append(log, "line 1000\n")
    assert drain(tailer) == ["line 1000"]
    tailer.close()


def test_from_start_reads_everything(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(300)))
    tailer = LogTailer(log, from_start=True, use_watcher=False)
    assert drain(tailer) == [f"line {i}" for i in range(300)]
    tailer.close()


def test_truncation_rereads_from_the_start(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("")
    tailer = LogTailer(log, use_watcher=False)
    append(log, "old 1\nold 2\nold 3\n")
    assert drain(tailer) == ["old 1", "old 2", "old 3"]
    with open(log, "w") as fh:  # what llama-server's --log-file does on restart ("w" mode)
        fh.write("new 1\n")
    assert drain(tailer) == ["new 1"]
    assert tailer.truncations == 1
    append(log, "new 2\n")
    assert drain(tailer) == ["new 2"]
    tailer.close()


def test_rotation_finishes_the_old_file_then_follows_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("")
    tailer = LogTailer(log, use_watcher=False)
    writer = open(log, "a")  # noqa: SIM115 - the writer keeps its handle across the rename, like a server
    writer.write("before rotation\n")
    writer.flush()
    assert drain(tailer) == ["before rotation"]
    os.rename(log, tmp_path / "server.log.1")
    writer.write("late line in old file\n")
    writer.write("unterminated tail")
    writer.flush()
    writer.close()
    log.write_text("first of new file\n")
    got = drain(tailer)
    assert got == ["late line in old file", "unterminated tail", "first of new file"]
    assert tailer.reopens == 1
    append(log, "second of new file\n")
    assert drain(tailer) == ["second of new file"]
    tailer.close()


def test_deletion_and_recreation(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("a\n")
    tailer = LogTailer(log, use_watcher=False)
    assert drain(tailer) == ["a"]
    log.unlink()
    assert drain(tailer) == []
    log.write_text("b\nc\n")
    assert drain(tailer) == ["b", "c"]
    tailer.close()


def test_file_that_appears_later_is_read_from_its_first_line(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    tailer = LogTailer(log, backlog_lines=1, use_watcher=False)
    assert drain(tailer) == []
    log.write_text("one\ntwo\nthree\n")
    assert drain(tailer) == ["one", "two", "three"]
    tailer.close()


def test_100_mb_backlog_start_is_fast_and_bounded(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    line = (
        b"0.11.480.823 I slot      release: id  3 | task 1 | stop processing: n_tokens = 47, truncated = 0\n"
    )
    block = line * (1 << 14)
    with open(log, "wb") as fh:
        while fh.tell() < 100 * 1024 * 1024:
            fh.write(block)
        fh.write(b"the very last line\n")
    assert log.stat().st_size > 100 * 1024 * 1024
    tracemalloc.start()
    t0 = time.perf_counter()
    tailer = LogTailer(log, backlog_lines=200, backlog_bytes=256 * 1024, use_watcher=False)
    got = tailer.read_available()
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(got) == 200 and got[-1] == "the very last line"
    assert elapsed < 2.0, elapsed
    assert peak < 8 * 1024 * 1024, peak
    tailer.close()


def test_splitter_bounds_an_endless_line() -> None:
    splitter = LineSplitter(max_line_bytes=1024)
    out: list[str] = []
    for _ in range(100):
        out.extend(splitter.feed(b"x" * 500))
    out.extend(splitter.feed(b"\nnext\n"))
    assert all(len(x) <= 1024 for x in out)
    assert out[-1] == "next"
    assert len(splitter._partial) == 0


def test_read_lines_keeps_an_unterminated_last_line(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_bytes(b"a\nb\n\x1b[31mc\x1b[0m")
    assert list(read_lines(log)) == ["a", "b", "c"]


async def test_async_batches_follow_appends_with_the_real_watcher(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("backlog line\n")
    tailer = LogTailer(log, poll_interval=5.0)  # the watcher, not the poll, must deliver
    seen: list[str] = []

    async def consume() -> None:
        async for batch in tailer.batches():
            seen.extend(batch)
            if "after 2" in seen:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    t0 = time.perf_counter()
    append(log, "after 1\n")
    await asyncio.sleep(0.05)
    append(log, "after 2\n")
    await asyncio.wait_for(task, timeout=4.0)
    assert seen == ["backlog line", "after 1", "after 2"]
    assert time.perf_counter() - t0 < 4.0
    tailer.close()


async def test_async_batches_survive_rotation_with_the_watcher(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("")
    tailer = LogTailer(log, poll_interval=5.0)
    seen: list[str] = []

    async def consume() -> None:
        async for batch in tailer.batches():
            seen.extend(batch)
            if "new file" in seen:
                return

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    append(log, "old file\n")
    await asyncio.sleep(0.3)
    os.rename(log, tmp_path / "server.log.1")
    log.write_text("new file\n")
    await asyncio.wait_for(task, timeout=4.0)
    assert seen == ["old file", "new file"]
    tailer.close()


async def test_stream_batches_from_a_real_subprocess() -> None:
    code = (
        "import sys\n"
        "for i in range(500):\n"
        "    sys.stdout.write(f'out {i}\\n'); sys.stderr.write(f'\\x1b[31merr {i}\\x1b[0m\\n')\n"
        "sys.stdout.write('no newline at end')\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    batches = 0
    async for batch in stream_batches(proc.stdout, proc.stderr):
        batches += 1
        lines.extend(batch)
    await proc.wait()
    assert sorted(x for x in lines if x.startswith("out")) == sorted(f"out {i}" for i in range(500))
    assert sorted(x for x in lines if x.startswith("err")) == sorted(f"err {i}" for i in range(500))
    assert "no newline at end" in lines
    assert len(lines) == 1001
    assert batches < 1001  # lines arrive in batches, not one by one


def test_joining_a_long_log_still_delivers_the_startup_block_first(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    startup = (DATA / "reference_b11434.log").read_text().splitlines()
    startup = startup[: next(i for i, line in enumerate(startup) if "listening on" in line) + 1]
    filler = [f"0.10.000.000 I srv  update_slots: all slots are idle {i}" for i in range(20_000)]
    log.write_text("\n".join(startup + filler) + "\n")
    tailer = LogTailer(log, backlog_lines=50, use_watcher=False)
    got = drain(tailer)
    assert got == startup + filler[-50:]
    tailer.close()


def test_no_startup_block_means_no_head_lines(tmp_path: Path) -> None:
    log = tmp_path / "other.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    tailer = LogTailer(log, backlog_lines=3, use_watcher=False)
    assert drain(tailer) == ["line 99997", "line 99998", "line 99999"]
    tailer.close()


def test_a_half_written_last_line_at_start_is_completed_not_lost(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("done 1\ndone 2\nhalf of thi")
    tailer = LogTailer(log, use_watcher=False)
    assert drain(tailer) == ["done 1", "done 2"]
    append(log, "s line\n")
    assert drain(tailer) == ["half of this line"]
    tailer.close()
