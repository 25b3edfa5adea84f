"""Arize Phoenix (a real OTLP receiver with a span query API): installed once into a cached venv, run as a
subprocess on free ports with its own working dir, queried over its REST API."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import platformdirs

from support.llama import free_port

PHOENIX_PACKAGE = "arize-phoenix"
PHOENIX_VERSION = "20.26.1"
PIP_TIMEOUT_S = 900
STARTUP_TIMEOUT_S = 120.0
_INSTALLED_MARKER = ".ctxbudget-installed"


class PhoenixSetupError(RuntimeError):
    """Phoenix could not be installed or did not come up; carries pip's or Phoenix's output."""


def phoenix_cache_dir() -> Path:
    """``$CTXBUDGET_PHOENIX_CACHE`` or ``<user cache>/ctxbudget`` (like the agents' npm cache)."""
    root = os.environ.get("CTXBUDGET_PHOENIX_CACHE")
    return Path(root) if root else Path(platformdirs.user_cache_dir("ctxbudget"))


@contextlib.contextmanager
def _install_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".phoenix-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install_phoenix(version: str = PHOENIX_VERSION) -> Path:
    """The python of a venv holding ``arize-phoenix==version``, created once (about 55 s, 600 MB).

    A venv is not relocatable, so it is built in place and marked finished last: an interrupted
    install has no marker and is removed and redone.
    """
    root = phoenix_cache_dir()
    venv = root / f"phoenix-venv-{version}"
    python = venv / "bin" / "python"
    if (venv / _INSTALLED_MARKER).is_file():
        return python
    with _install_lock(root):
        if (venv / _INSTALLED_MARKER).is_file():
            return python
        if venv.exists():
            shutil.rmtree(venv)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True,
                           text=True, timeout=PIP_TIMEOUT_S)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 f"{PHOENIX_PACKAGE}=={version}"],
                check=True, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
            )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(venv, ignore_errors=True)
            raise PhoenixSetupError(
                f"installing {PHOENIX_PACKAGE}=={version} failed (exit {exc.returncode}):\n"
                f"{(exc.stderr or '')[-3000:]}"
            ) from exc
        (venv / _INSTALLED_MARKER).write_text(f"{PHOENIX_PACKAGE}=={version}\n")
    return python


@dataclass
class RunningPhoenix:
    """A Phoenix server subprocess; `admin_secret` is the bearer token its API and OTLP endpoint want."""

    proc: subprocess.Popen[bytes]
    port: int
    admin_secret: str
    log_path: Path

    @property
    def url(self) -> str:
        """Base URL: the UI, the REST API under /v1, and OTLP/HTTP at /v1/traces."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """What Phoenix printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def spans(self, project: str = "default") -> list[dict[str, Any]]:
        """Every span of a project, through the REST API (paged)."""
        out: list[dict[str, Any]] = []
        cursor: str | None = None
        headers = {"authorization": f"Bearer {self.admin_secret}"}
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            response = httpx.get(f"{self.url}/v1/projects/{project}/spans", params=params,
                                 headers=headers, timeout=10)
            if response.status_code == 404:
                return out  # no span has reached this project yet
            response.raise_for_status()
            body = response.json()
            out.extend(body["data"])
            cursor = body.get("next_cursor")
            if not cursor:
                return out

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)


def start_phoenix(python: Path, workdir: Path) -> RunningPhoenix:
    """``phoenix serve`` on free loopback ports, auth on (so OTLP needs the bearer header), telemetry off."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, grpc_port = free_port(), free_port()
    admin_secret = "ctxbudget-test-admin-secret-0123456789abcdef"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ENABLE_AUTH": "true",
        "PHOENIX_SECRET": "ctxbudget-test-phoenix-secret-0123456789abcdef",
        "PHOENIX_ADMIN_SECRET": admin_secret,
    }
    log_path = workdir / "phoenix.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(python), "-m", "phoenix.server.main", "serve"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=workdir,
        )
    phoenix = RunningPhoenix(proc, port, admin_secret, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            raise PhoenixSetupError(f"phoenix exited with {proc.returncode}:\n{phoenix.log()[-3000:]}")
        try:
            if httpx.get(phoenix.url + "/healthz", timeout=2).status_code == 200:
                return phoenix
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            phoenix.stop()
            log = phoenix.log()[-3000:]
            raise PhoenixSetupError(f"phoenix not healthy after {STARTUP_TIMEOUT_S}s:\n{log}")
        time.sleep(0.25)
