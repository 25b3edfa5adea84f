"""Start and stop a real llama-server for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx

DEFAULT_CTX_SIZE = 8192
# A random model rarely samples EOS; cap generation so a request without max_tokens ends quickly.
DEFAULT_N_PREDICT = 256
HEALTH_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class LlamaServerError(RuntimeError):
    """llama-server did not come up; the message carries the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or a note when it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<no log: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class RunningServer:
    """One llama-server process started by a test, with where to reach it and where it logs."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    model_path: Path
    args: tuple[str, ...]
    api_key: str | None = None
    stderr_path: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str]:
        """Auth headers for this server (empty when it has no API key)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, timeout: float = 60.0) -> httpx.Client:
        """A synchronous HTTP client bound to this server, with auth."""
        return httpx.Client(base_url=self.url, headers=self.headers(), timeout=timeout)

    def diagnostics(self) -> str:
        """Tail of the log file, or of stderr when the server died before opening its log."""
        if self.log_path.exists() or self.stderr_path is None:
            return log_tail(self.log_path)
        return log_tail(self.stderr_path)

    def log_text(self) -> str:
        """Everything the server has logged so far."""
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, needle: str, timeout: float = 10.0) -> str:
        """Wait until ``needle`` appears in the log (the logger is asynchronous) and return the log."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log_text()
            if needle in text:
                return text
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not in log after {timeout}s:\n{log_tail(self.log_path)}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within a few seconds; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT_S)


class StartServer(Protocol):
    """Signature of the ``llama_server`` factory fixture (annotate tests with it)."""

    def __call__(
        self,
        model: Path | None = None,
        *,
        ctx_size: int = DEFAULT_CTX_SIZE,
        parallel: int = 1,
        n_predict: int = DEFAULT_N_PREDICT,
        extra_args: Sequence[str] = (),
        api_key: str | None = None,
    ) -> RunningServer: ...


def server_args(
    binary: Path,
    model: Path,
    *,
    port: int,
    log_path: Path,
    ctx_size: int = DEFAULT_CTX_SIZE,
    parallel: int = 1,
    n_predict: int = DEFAULT_N_PREDICT,
    api_key: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line the fixtures use: trace-level uncoloured log file, metrics, one thread."""
    args = [
        str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "-c", str(ctx_size), "-np", str(parallel), "-n", str(n_predict), "-t", "1",
        "--log-file", str(log_path), "--log-colors", "off", "-lv", "4", "--metrics",
    ]
    if api_key:
        args += ["--api-key", api_key]
    return args + list(extra_args)


def wait_healthy(server: RunningServer, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Poll ``/health`` until it answers 200; fail with the log tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            code = server.proc.poll()
            if code is not None:
                raise LlamaServerError(
                    f"llama-server exited with {code} before it was healthy:\n{server.diagnostics()}"
                )
            try:
                if client.get(server.url + "/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                server.stop()
                raise LlamaServerError(
                    f"llama-server not healthy after {timeout}s:\n{server.diagnostics()}"
                )
            time.sleep(0.05)


def start_llama_server(
    binary: Path,
    model: Path,
    workdir: Path,
    *,
    ctx_size: int = DEFAULT_CTX_SIZE,
    parallel: int = 1,
    n_predict: int = DEFAULT_N_PREDICT,
    api_key: str | None = None,
    extra_args: Sequence[str] = (),
    port: int | None = None,
    timeout: float = HEALTH_TIMEOUT_S,
) -> RunningServer:
    """Start llama-server on a free loopback port, logging into ``workdir``, and wait until healthy."""
    attempts = 1 if port else 3
    for attempt in range(attempts):
        try:
            return _start_once(
                binary, model, workdir, port=port or free_port(), ctx_size=ctx_size, parallel=parallel,
                n_predict=n_predict, api_key=api_key, extra_args=extra_args, timeout=timeout,
            )
        except LlamaServerError as exc:
            # Another process may grab the port between free_port() and the server's bind.
            if "bind" not in str(exc).lower() or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _start_once(
    binary: Path,
    model: Path,
    workdir: Path,
    *,
    port: int,
    ctx_size: int,
    parallel: int,
    n_predict: int,
    api_key: str | None,
    extra_args: Sequence[str],
    timeout: float,
) -> RunningServer:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "server.log"
    stderr_path = workdir / "server.stderr"
    args = server_args(
        binary, model, port=port, log_path=log_path, ctx_size=ctx_size, parallel=parallel,
        n_predict=n_predict, api_key=api_key, extra_args=extra_args,
    )
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LLAMA_API_KEY", None)
    with open(stderr_path, "wb") as stderr:
        # The log file holds the same lines as stderr; stderr is kept for crashes before logging starts.
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=stderr, env=env, cwd=workdir)
    server = RunningServer(
        proc=proc, port=port, log_path=log_path, model_path=model, args=tuple(args), api_key=api_key,
        stderr_path=stderr_path,
    )
    try:
        wait_healthy(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


def long_conversation(turns: int, words: int) -> list[dict[str, str]]:
    """Alternating user/assistant messages, each much longer than the SWA model's 64-token window."""
    messages = [{"role": "system", "content": "You are a test assistant. " * 20}]
    for turn in range(turns):
        filler = " ".join(f"item{turn}_{i}" for i in range(words))
        messages.append({"role": "user", "content": f"Question {turn}: {filler}"})
        messages.append({"role": "assistant", "content": f"Answer {turn}: {filler}"})
    messages.append({"role": "user", "content": "And finally?"})
    return messages
