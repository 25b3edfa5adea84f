"""Follow a log file (or a subprocess's output) as batches of decoded, colour-free lines.

The tailer starts at the end of the file with a bounded backlog, survives truncation, rotation and
deletion + re-creation, joins partial lines and bounds every buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import BinaryIO

from tui.core.waits import wait_set

DEFAULT_BACKLOG_LINES = 200
# How long watchfiles waits for more changes before it reports them; it also checks for a stop request
# that often (taking the GIL). 10 ms cost 0.53% of a core with an idle log, 30 ms 0.25%, and isolated
# lines still arrive within ~40 ms.
WATCH_STEP_MS = 30
DEFAULT_BACKLOG_BYTES = 1 << 20
DEFAULT_STARTUP_BYTES = 512 * 1024
DEFAULT_BATCH_INTERVAL = 0.05
DEFAULT_POLL_INTERVAL = 0.5
DEFAULT_MAX_BATCH_LINES = 5000
DEFAULT_MAX_LINE_BYTES = 64 * 1024
READ_CHUNK = 256 * 1024

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


class LineSplitter:
    """Bytes in, complete lines out: decodes leniently, strips ANSI colours and CR, caps line length."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max(16, max_line_bytes)
        self._partial = b""

    def feed(self, data: bytes) -> list[str]:
        """Add bytes; return the lines they complete (the unterminated tail is kept, bounded)."""
        if self._partial:
            data = self._partial + data
            self._partial = b""
        cut = data.rfind(b"\n")
        if cut < 0:
            self._partial = data
            return self._spill()
        self._partial = data[cut + 1 :]
        lines = _decode_lines(data[:cut])
        if len(self._partial) > self.max_line_bytes:
            lines.extend(self._spill())
        if self.max_line_bytes < len(data) and any(len(x) > self.max_line_bytes for x in lines):
            lines = [x[: self.max_line_bytes] for x in lines]
        return lines

    def _spill(self) -> list[str]:
        # An endless line would grow without bound: hand out its head, drop the rest until a newline.
        if len(self._partial) <= self.max_line_bytes:
            return []
        head = self._partial[: self.max_line_bytes]
        self._partial = b""
        return _decode_lines(head)

    def flush(self) -> list[str]:
        """The unterminated tail as a final line (at end of input or when a file is replaced)."""
        rest, self._partial = self._partial, b""
        return _decode_lines(rest) if rest else []

    def reset(self) -> None:
        """Forget the unterminated tail (the file was truncated under it)."""
        self._partial = b""


def _decode_lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace")
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "")
    return text.split("\n")


def read_lines(path: str | os.PathLike[str], max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> Iterator[str]:
    """Every line of a file, read in chunks (for the CLI and tests); raises OSError if unreadable."""
    splitter = LineSplitter(max_line_bytes)
    with open(path, "rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            yield from splitter.feed(chunk)
    yield from splitter.flush()


def read_backlog(
    fh: BinaryIO, size: int, max_lines: int, max_bytes: int, head_bytes: int = 0
) -> tuple[list[str], int]:
    """The last ``max_lines`` complete lines within the last ``max_bytes`` bytes before ``size``.

    With ``head_bytes``, the server's startup block (the head of the file up to the `listening on` line,
    within ``head_bytes``) comes first when the tail window does not reach back to it, so model, slot
    and context facts are known even when joining a long log. Returns the lines and the offset just
    after the last complete line (where following must continue).
    """
    if size <= 0:
        return [], 0
    start = max(0, size - max(0, max_bytes))
    fh.seek(start)
    data = fh.read(size - start)
    if start > 0:
        nl = data.find(b"\n")
        start += nl + 1 if nl >= 0 else len(data)
        data = data[nl + 1 :] if nl >= 0 else b""
    cut = data.rfind(b"\n")
    end = start + cut + 1 if cut >= 0 else start
    pieces = data[:cut].split(b"\n") if cut >= 0 and max_lines > 0 else []
    if len(pieces) > max_lines:
        dropped = pieces[: len(pieces) - max_lines]
        start += sum(len(p) + 1 for p in dropped)
        pieces = pieces[len(dropped) :]
    lines = _decode_lines(b"\n".join(pieces)) if pieces else []
    if head_bytes > 0 and start > 0:
        lines = _startup_head(fh, min(head_bytes, start)) + lines
    return lines, end


def _startup_head(fh: BinaryIO, limit: int) -> list[str]:
    fh.seek(0)
    head = fh.read(limit)
    cut = head.rfind(b"\n")
    if cut < 0:
        return []
    lines = _decode_lines(head[:cut])
    for i, line in enumerate(lines):
        if "listening on" in line:
            return lines[: i + 1]
    return []  # no complete startup block in reach: better nothing than an arbitrary slice


class LogTailer:
    """Follows one log file; ``batches()`` yields lists of new lines, at most one batch per interval."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        backlog_lines: int = DEFAULT_BACKLOG_LINES,
        backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
        startup_bytes: int = DEFAULT_STARTUP_BYTES,
        from_start: bool = False,
        batch_interval: float = DEFAULT_BATCH_INTERVAL,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_batch_lines: int = DEFAULT_MAX_BATCH_LINES,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        use_watcher: bool = True,
    ) -> None:
        self.path = Path(path)
        self.backlog_lines = backlog_lines
        self.backlog_bytes = backlog_bytes
        self.startup_bytes = startup_bytes
        self.from_start = from_start
        self.batch_interval = batch_interval
        self.poll_interval = poll_interval
        self.max_batch_lines = max(1, max_batch_lines)
        self.use_watcher = use_watcher
        self._splitter = LineSplitter(max_line_bytes)
        self._fh: BinaryIO | None = None
        self._ident: tuple[int, int] | None = None
        self._pos = 0
        self._first_check = True
        self._pending: list[str] = []
        self._closed = False
        self._stop: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None
        self.reopens = 0
        self.truncations = 0

    # --- public ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following and release the file."""
        self._closed = True
        if self._stop is not None:
            self._stop.set()  # lets the watcher exit even if the consumer never finishes the iterator
        if self._wake is not None:
            self._wake.set()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def pending_lines(self) -> int:
        """Lines read from the file but not handed out yet."""
        return len(self._pending)

    def read_available(self) -> list[str]:
        """Synchronously pull whatever is new (opening, rotating, truncating as needed); bounded."""
        self._check_file()
        if self._fh is not None:
            self._read_fh()
        out = self._pending[: self.max_batch_lines]
        del self._pending[: self.max_batch_lines]
        return out

    async def batches(self) -> AsyncIterator[list[str]]:
        """New lines in batches until ``close()``; waits for the file to appear if it does not exist."""
        wake = self._wake = asyncio.Event()
        stop = self._stop = asyncio.Event()
        watcher = asyncio.create_task(self._watch(wake, stop)) if self.use_watcher else None
        last_yield = 0.0
        try:
            while not self._closed:
                batch = self.read_available()
                if batch:
                    gap = time.monotonic() - last_yield
                    if gap < self.batch_interval:
                        await asyncio.sleep(self.batch_interval - gap)
                        room = self.max_batch_lines - len(batch)
                        if room > 0:
                            more = self.read_available()
                            batch.extend(more[:room])
                            self._pending[:0] = more[room:]
                    last_yield = time.monotonic()
                    yield batch
                    continue
                wake.clear()
                await wait_set(wake, self.poll_interval)
        finally:
            stop.set()
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watcher
            self.close()

    # --- internals --------------------------------------------------------------------------------

    async def _watch(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        # Watch the folder, not the file: a watch on the file is lost when it is deleted or rotated.
        from watchfiles import awatch

        folder = self.path.parent
        name = self.path.name
        while not stop.is_set():
            if not folder.is_dir():
                await asyncio.sleep(self.poll_interval)
                continue
            try:
                async for _ in awatch(
                    folder,
                    watch_filter=lambda _change, p: os.path.basename(p) == name,
                    debounce=max(10, int(self.batch_interval * 1000)),
                    step=WATCH_STEP_MS,
                    stop_event=stop,
                    recursive=False,
                    rust_timeout=int(self.poll_interval * 1000) or 500,
                    yield_on_timeout=False,
                ):
                    wake.set()
            except Exception:  # the poll loop keeps working without the watcher (e.g. folder removed)
                await asyncio.sleep(self.poll_interval)

    def _open(self, at_end: bool) -> None:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - kept open across calls on purpose
        except OSError:
            return
        st = os.fstat(fh.fileno())
        self._fh = fh
        self._ident = (st.st_dev, st.st_ino)
        self._splitter.reset()
        if at_end:
            lines, self._pos = read_backlog(
                fh, st.st_size, self.backlog_lines, self.backlog_bytes, self.startup_bytes
            )
            self._pending.extend(lines)
            fh.seek(self._pos)
        else:
            self._pos = 0

    def _check_file(self) -> None:
        if self._closed:
            return
        if self._fh is None:
            # Only a file that exists when following starts is joined at its end; one that appears later
            # (the server starting after us) is read from its first line.
            self._open(at_end=not self.from_start and self._first_check)
            self._first_check = False
            return
        try:
            st = os.stat(self.path)
        except OSError:
            return  # deleted: keep reading the old file until a new one appears
        if (st.st_dev, st.st_ino) != self._ident:
            self._read_fh()  # finish the old file first
            self._pending.extend(self._splitter.flush())
            self._fh.close()
            self._fh = None
            self._open(at_end=False)
            self.reopens += 1
            return
        if st.st_size < self._pos:
            self._fh.seek(0)
            self._pos = 0
            self._splitter.reset()
            self.truncations += 1

    def _read_fh(self) -> None:
        fh = self._fh
        if fh is None:
            return
        budget = self.max_batch_lines * 2
        while len(self._pending) < budget:
            try:
                chunk = fh.read(READ_CHUNK)
            except OSError:
                return
            if not chunk:
                return
            self._pos += len(chunk)
            self._pending.extend(self._splitter.feed(chunk))
            if len(self._pending) > budget * 4:  # a flood the consumer cannot keep up with: drop the oldest
                del self._pending[: len(self._pending) - budget * 4]


async def stream_batches(
    *readers: asyncio.StreamReader,
    max_batch_lines: int = DEFAULT_MAX_BATCH_LINES,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    max_queued_batches: int = 64,
) -> AsyncIterator[list[str]]:
    """Lines from one or more stream readers (e.g. a subprocess's stdout and stderr) in batches, until EOF."""
    queue: asyncio.Queue[list[str] | None] = asyncio.Queue(maxsize=max(1, max_queued_batches))

    async def pump(reader: asyncio.StreamReader) -> None:
        splitter = LineSplitter(max_line_bytes)
        try:
            while data := await reader.read(READ_CHUNK):
                lines = splitter.feed(data)
                if lines:
                    await queue.put(lines)
            tail = splitter.flush()
            if tail:
                await queue.put(tail)
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(r)) for r in readers]
    running = len(tasks)
    try:
        while running:
            first = await queue.get()
            if first is None:
                running -= 1
                continue
            batch = first
            while len(batch) < max_batch_lines and not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    running -= 1
                    continue
                batch.extend(more)
            yield batch
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
