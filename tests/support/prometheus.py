"""A real Prometheus (Debian's `prometheus` package, installed with apt-get when missing) scraping a proxy,
and the PromQL queries the README and the Grafana dashboard use, extracted from those files."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import platformdirs

from support.llama import free_port

APT_TIMEOUT_S = 900
STARTUP_TIMEOUT_S = 60.0
# What Grafana puts in for its variables when it runs a query (the test's stand-ins).
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$instance": ".*"}
_LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[^,()]+),\s*\w+\)$")
# A query that ends in a filter against a number (an alert): its left side must return data.
_TRAILING_FILTER = re.compile(r"^(?P<lhs>.*?)\s*(==|!=|>=|<=|>|<)\s*[0-9.]+$", re.DOTALL)


class PrometheusSetupError(RuntimeError):
    """Prometheus could not be installed or did not come up; carries its output."""


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    root = Path(platformdirs.user_cache_dir("ctxbudget"))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".prometheus-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def find_prometheus() -> Path:
    """`$PROMETHEUS`, `prometheus` on PATH, or Debian's package installed now (CI runs as root)."""
    given = os.environ.get("PROMETHEUS") or shutil.which("prometheus")
    if given:
        return Path(given)
    with _install_lock():
        found = shutil.which("prometheus")
        if found:
            return Path(found)
        apt = shutil.which("apt-get")
        if apt is None or os.geteuid() != 0:
            raise PrometheusSetupError(
                "prometheus not found: install Debian's package (apt-get install prometheus), put it on "
                "PATH, or set PROMETHEUS=/path/to/prometheus"
            )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in ([apt, "update", "-qq"],
                        [apt, "install", "-y", "-qq", "--no-install-recommends", "prometheus"]):
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT_S)
            if done.returncode != 0:
                raise PrometheusSetupError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        found = shutil.which("prometheus")
        if found is None:
            raise PrometheusSetupError("apt-get installed prometheus, but no prometheus binary is on PATH")
        return Path(found)


@dataclass
class RunningPrometheus:
    """A Prometheus subprocess with its own config and storage; queried over its HTTP API."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        """Base URL of the HTTP API."""
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """What Prometheus printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def query(self, promql: str) -> dict[str, Any]:
        """The whole JSON answer of an instant query at now (status, data or error, warnings)."""
        response = httpx.get(self.url + "/api/v1/query", params={"query": promql}, timeout=10)
        answer: dict[str, Any] = response.json()
        return answer

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)


def start_prometheus(binary: Path, workdir: Path, target: str, metrics_path: str) -> RunningPrometheus:
    """Prometheus scraping `target` (HOST:PORT) every second on loopback, with storage in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: ctxbudget\n"
        f"    metrics_path: {metrics_path}\n    static_configs:\n      - targets: [\"{target}\"]\n"
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(binary), f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir,
        )
    prometheus = RunningPrometheus(proc, port, log_path)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            log = prometheus.log()[-3000:]
            raise PrometheusSetupError(f"prometheus exited with {proc.returncode}:\n{log}")
        try:
            if httpx.get(prometheus.url + "/-/ready", timeout=2).status_code == 200:
                return prometheus
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            prometheus.stop()
            log = prometheus.log()[-3000:]
            raise PrometheusSetupError(f"prometheus not ready after {STARTUP_TIMEOUT_S}s:\n{log}")
        time.sleep(0.2)


def readme_queries(readme: Path) -> list[str]:
    """Every query in the README's ```promql blocks (a line starting with whitespace continues one)."""
    queries: list[str] = []
    for block in re.findall(r"^```promql\n(.*?)^```", readme.read_text(), re.MULTILINE | re.DOTALL):
        for line in block.splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if line[0].isspace() and queries:
                queries[-1] += " " + line.strip()
            else:
                queries.append(line.strip())
    return queries


def grafana_queries(dashboard: Path) -> list[str]:
    """Every target expression and variable query of a Grafana dashboard JSON, as written."""
    data = json.loads(dashboard.read_text())
    out: list[str] = []

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            yield item
            yield from panels(item.get("panels", []))

    for panel in panels(data.get("panels", [])):
        out.extend(t["expr"] for t in panel.get("targets", []) if t.get("expr"))
    for variable in data.get("templating", {}).get("list", []):
        query = variable.get("query")
        if variable.get("type") == "query":
            out.append(query["query"] if isinstance(query, dict) else query)
    return out


def as_promql(query: str) -> str:
    """A dashboard query as Prometheus runs it: Grafana's variables filled in, label_values() as a metric."""
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    match = _LABEL_VALUES.match(query.strip())
    return match.group("metric").strip() if match else query


def data_part(query: str) -> str:
    """What must return data: the left side of a trailing numeric filter (an alert), else the query."""
    match = _TRAILING_FILTER.match(query.strip())
    return match.group("lhs") if match else query
