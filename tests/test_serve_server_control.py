"""Server control on the GPU box from the laptop: `server start/restart/stop --connect` through serve."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from support.eventually import eventually_sync
from support.llama import free_port
from support.serve_process import FeedReader, ctxbudget_cmd, start_serve

from tui.core.serve.auth import token_path

pytestmark = [pytest.mark.llama, pytest.mark.timeout(300)]


def box_config(workdir: Path, binary: Path, model: Path, port: int) -> Path:
    config = workdir / "config.toml"
    config.write_text(
        f"""
[journal]
path = "{workdir / "journal.sqlite3"}"

[server]
url = "http://127.0.0.1:{port}"
binary = "{binary}"
model = "{model}"
ctx_size = 2048
parallel = 1
log_file = "{workdir / "server.log"}"
extra_args = ["-t", "1", "-n", "16"]
poll_interval = 0.5
"""
    )
    return config


def laptop(*args: str, token: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    empty = cwd / "laptop.toml"
    empty.write_text("# the laptop: defaults only\n")
    env = {**os.environ, "CTXBUDGET_CONFIG": str(empty), "CTXBUDGET_TOKEN": token}
    return subprocess.run(
        [*ctxbudget_cmd(), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=240
    )


def n_ctx(url: str) -> int:
    return int(
        httpx.get(url + "/props", timeout=5, trust_env=False).json()["default_generation_settings"]["n_ctx"]
    )


def test_start_restart_stop_from_the_laptop(llama_server_bin: Path, tiny_model: Path, tmp_path: Path) -> None:
    port = free_port()
    box = tmp_path / "box"
    box.mkdir()
    serve = start_serve(box_config(box, llama_server_bin, tiny_model, port), box)
    here = tmp_path / "laptop"
    here.mkdir()
    token = token_path().read_text().strip()
    feed = FeedReader(serve.url, headers={"Authorization": f"Bearer {token}"})
    try:
        started = laptop("server", "start", "--connect", serve.url, "--json", token=token, cwd=here)
        assert started.returncode == 0, started.stderr
        first = json.loads(started.stdout)
        assert first["phase"] == "up" and n_ctx(first["url"]) == 2048

        restarted = laptop(
            "server", "restart", "--connect", serve.url, "--ctx-size", "4096", "--force", "--no-keep-cache",
            token=token, cwd=here,
        )  # fmt: skip
        assert restarted.returncode == 0, restarted.stderr
        steps = [
            line.split("]", 1)[0].lstrip("[")
            for line in restarted.stderr.splitlines()
            if line.startswith("[")
        ]
        assert steps[0] == "stopping" and "starting" in steps and steps[-1] == "up"
        assert n_ctx(f"http://127.0.0.1:{port}") == 4096
        status = json.loads(
            laptop("server", "status", "--connect", serve.url, "--json", token=token, cwd=here).stdout
        )
        assert status["phase"] == "up" and status["owned"] and status["pid"] != first["pid"]
        eventually_sync(
            lambda: any(e["data"].get("n_ctx_slot") == 4096 for e in feed.of("server")),
            what="the restarted server's snapshot on the feed",
        )

        refused = laptop(
            "server", "start", "--connect", serve.url, "--ctx-size", "999999999", token=token, cwd=here
        )
        assert refused.returncode == 2 and refused.stderr.startswith("ctxbudget server start: "), (
            refused.stderr
        )

        stopped = laptop("server", "stop", "--connect", serve.url, token=token, cwd=here)
        assert stopped.returncode == 0, stopped.stderr
        down = laptop("server", "status", "--connect", serve.url, token=token, cwd=here)
        assert down.returncode == 1 and "down" in down.stdout
    finally:
        feed.close()
        laptop("server", "stop", "--connect", serve.url, token=token, cwd=here)
        assert serve.stop() == 0, serve.output()[-2000:]
