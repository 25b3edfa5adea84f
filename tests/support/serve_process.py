"""Run ``ctxbudget serve`` as a real subprocess, and read its feed stream like a remote client does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support.llama import RunningServer, free_port

STARTUP_TIMEOUT_S = 30.0


class ServeStartError(RuntimeError):
    """serve did not say it listens; carries its output."""


def serve_config(workdir: Path, server: RunningServer, proxy_port: int, *, store_bodies: bool = True) -> Path:
    """A config.toml pointing serve at the test server, its log and a journal in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.toml"
    config.write_text(
        f"""
[proxy]
listen = "127.0.0.1:{proxy_port}"
upstream = "{server.url}"

[journal]
path = "{workdir / "journal.sqlite3"}"
store_bodies = {"true" if store_bodies else "false"}

[server]
url = "{server.url}"
log_file = "{server.log_path}"
poll_interval = 0.5
"""
    )
    return config


@dataclass
class ServeProcess:
    """A ``ctxbudget serve`` child process."""

    proc: subprocess.Popen[bytes]
    url: str
    output_path: Path
    _stopped: bool = field(default=False, repr=False)

    def output(self) -> str:
        """What serve printed so far."""
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, SIGKILL if it hangs; the exit code."""
        if not self._stopped:
            self._stopped = True
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=timeout)
        code = self.proc.returncode
        assert code is not None
        return code


def ctxbudget_cmd() -> list[str]:
    """The console script of this checkout's venv (falls back to ``python -m tui``)."""
    script = Path(sys.executable).with_name("ctxbudget")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tui"]


def start_serve(
    config: Path,
    workdir: Path,
    *extra: str,
    port: int | None = None,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    listen_flag: bool = True,
) -> ServeProcess:
    """``ctxbudget --config CONFIG serve --listen HOST:PORT EXTRA...``; waits for its listening line
    (without `listen_flag`, serve listens where the config's [serve] listen says)."""
    port = port or free_port()
    output = workdir / f"serve-{port}-{time.monotonic_ns()}.out"
    listen = ["--listen", f"{host}:{port}"] if listen_flag else []
    args = [*ctxbudget_cmd(), "--config", str(config), "serve", *listen, *extra]
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(output, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=workdir)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        text = output.read_text(errors="replace")
        for line in text.splitlines():
            if line.startswith("ctxbudget serve: listening on "):
                url = line.split("listening on ", 1)[1].split(" ", 1)[0]
                return ServeProcess(proc, url, output)
        if proc.poll() is not None:
            raise ServeStartError(f"ctxbudget serve exited with {proc.returncode}:\n{text[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise ServeStartError(f"serve did not listen after {STARTUP_TIMEOUT_S}s:\n{text[-3000:]}")
        time.sleep(0.1)


class FeedReader:
    """One feed connection read in a thread: every event it got, in order."""

    def __init__(
        self,
        base_url: str,
        *,
        epoch: str | None = None,
        after: int | None = None,
        rows_after: int = -1,
        headers: dict[str, str] | None = None,
        verify: Any = True,
        flying: list[int] | None = None,
    ) -> None:
        params: dict[str, Any] = {"rows_after": rows_after}
        if flying:
            params["flying"] = ",".join(map(str, flying))
        if epoch is not None:
            params["epoch"] = epoch
        if after is not None:
            params["after"] = after
        self.events: list[dict[str, Any]] = []
        self._client = httpx.Client(
            timeout=httpx.Timeout(30, read=20), headers=headers, verify=verify, trust_env=False
        )
        self._stream = self._client.stream("GET", base_url + "/_ctxbudget/feed", params=params)
        self.response = self._stream.__enter__()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self.response.iter_lines():
                if line:
                    self.events.append(json.loads(line))
        except BaseException as exc:  # closed by close(): the test looks at what arrived before
            self.error = exc

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Events of one type."""
        return [e for e in list(self.events) if e["type"] == kind]

    def row_ids(self) -> list[int]:
        """Ids of every record received, in order (duplicates kept)."""
        return [r["id"] for e in self.of("rows") for r in e["data"]["records"]]

    def last_id(self) -> int:
        """The id of the last event handled."""
        return int(self.events[-1]["id"])

    def close(self) -> None:
        """Drop the connection mid-stream (as a broken link would)."""
        self._client.close()
        self._thread.join(timeout=10)
