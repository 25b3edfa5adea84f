"""Run ``ctxbudget proxy`` as a real subprocess for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.llama import free_port

STARTUP_TIMEOUT_S = 30.0


class ProxyStartError(RuntimeError):
    """The proxy did not answer its health endpoint; carries its output."""


@dataclass
class ProxyProcess:
    """A ``ctxbudget proxy`` child process and where its journal and output go."""

    proc: subprocess.Popen[bytes]
    port: int
    journal_path: Path
    output_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """Base URL agents are pointed at."""
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """What the proxy printed so far (stdout and stderr)."""
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    def health(self) -> dict[str, object]:
        """The proxy's own status (``/_ctxbudget/health``)."""
        body: dict[str, object] = httpx.get(self.url + "/_ctxbudget/health", timeout=5).json()
        return body

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM (the proxy finishes journaling, then exits), SIGKILL if it hangs; the exit code."""
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


def start_proxy(
    upstream: str,
    workdir: Path,
    *,
    extra_args: tuple[str, ...] = (),
    config_text: str = "",
    env_extra: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> ProxyProcess:
    """``python -m tui proxy --listen HOST:PORT --upstream URL --journal PATH`` with an empty config
    (or `config_text`), and the environment plus `env_extra`."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.toml"
    config.write_text(config_text or "# empty: defaults only, nothing from the user's config\n")
    journal = workdir / "journal.sqlite3"
    output = workdir / "proxy.out"
    port = free_port()
    args = [
        sys.executable, "-m", "tui", "proxy", "--listen", f"{host}:{port}", "--upstream", upstream,
        "--journal", str(journal), *extra_args,
    ]
    env = {**os.environ, "CTXBUDGET_CONFIG": str(config), "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    with open(output, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir)
    proxy = ProxyProcess(proc=proc, port=port, journal_path=journal, output_path=output)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise ProxyStartError(f"ctxbudget proxy exited with {proc.returncode}:\n{proxy.output()[-3000:]}")
        try:
            if httpx.get(proxy.url + "/_ctxbudget/health", timeout=2).status_code == 200:
                return proxy
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proxy.stop()
            raise ProxyStartError(f"proxy not healthy after {STARTUP_TIMEOUT_S}s:\n{proxy.output()}")
        time.sleep(0.1)
