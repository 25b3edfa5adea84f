"""The dashboard's own proxy as a child process it owns, so forwarding never waits for the UI's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

from tui.core.config import Settings
from tui.core.feed.proxy_child import server_message, settings_message
from tui.core.poll.snapshots import ServerSnapshot
from tui.core.waits import within

STOP_TIMEOUT_S = 10.0  # the child finishes journaling what it captured before it exits
STDERR_LINES = 20
# Server polls waiting in the pipe beyond this are dropped: a stalled child must not grow our memory.
MAX_PENDING_BYTES = 1 << 20


class EmbeddedProxyError(RuntimeError):
    """The proxy process could not start (the message says why and what to do)."""


class EmbeddedProxy:
    """Runs `python -m tui.core.feed.proxy_child`, which exits once its stdin closes (stop(), or we die)."""

    def __init__(
        self,
        settings: Settings,
        journal_path: Path,
        on_problem: Callable[[str | None], None] | None = None,
        on_row: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.journal_path = journal_path
        self.on_problem = on_problem  # journal trouble the child reports (None: fine again), on the loop
        self.on_row = on_row  # the child journaled a row (on the loop)
        self.url = ""
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: deque[str] = deque(maxlen=STDERR_LINES)
        self._drains: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return self._process.pid if self._process is not None else None

    async def start(self) -> str:
        """Spawn the child and wait until it listens; its URL."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tui.core.feed.proxy_child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # no terminal signals: it stops when the dashboard says so or dies
        )
        self._process = process
        assert process.stdin is not None and process.stdout is not None and process.stderr is not None
        self._drains.append(asyncio.create_task(self._keep_stderr(process.stderr), name="proxy-stderr"))
        process.stdin.write(settings_message(self.settings, self.journal_path))
        await process.stdin.drain()
        answer: dict[str, object] = {}
        while line := await process.stdout.readline():  # reports may come before it listens
            if not self._report(line) and line.startswith((b'{"listening"', b'{"error"')):
                answer = json.loads(line)
                break
        # Read stdout to its end (the child's reports), so the pipes close with the process.
        self._drains.append(asyncio.create_task(self._reports(process.stdout), name="proxy-stdout"))
        if "listening" not in answer:
            await self.wait()
            raise EmbeddedProxyError(str(answer.get("error") or self.last_error(process.returncode)))
        self.url = str(answer["listening"])
        return self.url

    def send_server(self, snapshot: ServerSnapshot) -> None:
        """Pass a server poll on to the child (its metrics and compaction use it; it does not poll itself)."""
        process = self._process
        stdin = process.stdin if process is not None else None
        if stdin is None or stdin.is_closing() or process is None or process.returncode is not None:
            return
        if stdin.transport.get_write_buffer_size() > MAX_PENDING_BYTES:
            return
        stdin.write(server_message(snapshot))

    async def _reports(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self._report(line)

    def _report(self, line: bytes) -> bool:
        """Pass on a row or problem report; False for any other line."""
        if line.startswith(b'{"row"'):
            if self.on_row is not None:
                self.on_row()
            return True
        if line.startswith(b'{"problem"'):
            if self.on_problem is not None:
                self.on_problem(json.loads(line)["problem"])
            return True
        return False

    async def _keep_stderr(self, stream: asyncio.StreamReader) -> None:
        async for line in stream:
            self._stderr.append(line.decode("utf-8", "replace").rstrip())

    def last_error(self, code: int | None) -> str:
        """Why the child ended: its last stderr line, or its exit code."""
        lines = [line for line in self._stderr if line.strip()]
        return lines[-1] if lines else f"the proxy process exited with code {code}"

    async def wait(self) -> int:
        """Until the child exits; its exit code."""
        assert self._process is not None
        code = await self._process.wait()
        await asyncio.gather(*self._drains, return_exceptions=True)
        return code

    async def stop(self) -> None:
        """Close its stdin (it finishes journaling and exits), then make sure it is gone."""
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()
        try:
            await within(self.wait(), STOP_TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await self.wait()

