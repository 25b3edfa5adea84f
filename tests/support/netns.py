"""A second machine on this one: a network namespace joined by a veth pair (needs root and iproute2)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from support.serve_process import ctxbudget_cmd


def ip(*args: str) -> None:
    """Run `ip ARGS`, failing loudly."""
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass(frozen=True)
class Box:
    """The GPU box's namespace, its address, and the laptop end of the link."""

    netns: str
    laptop_link: str
    address: str


@contextlib.contextmanager
def gpu_box() -> Iterator[Box]:
    """A namespace joined to this one by a veth pair; removed with everything in it afterwards."""
    tag = secrets.token_hex(3)
    netns, laptop_link, box_link = f"ctxb-{tag}", f"vl{tag}", f"vb{tag}"
    subnet = f"10.{int(tag[:2], 16) % 200 + 20}.{int(tag[2:4], 16)}"
    ip("netns", "add", netns)
    try:
        ip("link", "add", laptop_link, "type", "veth", "peer", "name", box_link)
        ip("link", "set", box_link, "netns", netns)
        ip("addr", "add", f"{subnet}.1/24", "dev", laptop_link)
        ip("link", "set", laptop_link, "up")
        ip("netns", "exec", netns, "ip", "addr", "add", f"{subnet}.2/24", "dev", box_link)
        ip("netns", "exec", netns, "ip", "link", "set", box_link, "up")
        ip("netns", "exec", netns, "ip", "link", "set", "lo", "up")
        yield Box(netns, laptop_link, f"{subnet}.2")
    finally:
        pids = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True).stdout.split()
        for pid in pids:  # whatever still runs in the box (serve, its proxy, llama-server)
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "link", "del", laptop_link], capture_output=True)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def box_config(workdir: Path, binary: Path, model: Path, proxy_port: int, *, autostart: bool = False) -> Path:
    """The box's config: a llama-server that serve's server control starts, the proxy, the journal."""
    from support.llama import free_port

    port = free_port()
    config = workdir / "box.toml"
    config.write_text(
        f"""
[proxy]
listen = "0.0.0.0:{proxy_port}"
upstream = "http://127.0.0.1:{port}"

[journal]
path = "{workdir / "journal.sqlite3"}"
store_bodies = true

[server]
url = "http://127.0.0.1:{port}"
model = "{model}"
binary = "{binary}"
ctx_size = 65536
parallel = 1
log_file = "{workdir / "server.log"}"
extra_args = ["-t", "2"]
poll_interval = 0.5
autostart = {"true" if autostart else "false"}
"""
    )
    return config


def start_box_serve(box: Box, config: Path, port: int, out: Path) -> subprocess.Popen[bytes]:
    """`ctxbudget serve --proxy` inside the namespace, on the box's veth address (plain HTTP + token)."""
    args = ["ip", "netns", "exec", box.netns, *ctxbudget_cmd(), "--config", str(config), "serve", "--proxy",
            "--allow-remote", "--listen", f"{box.address}:{port}", "--insecure-http"]  # fmt: skip
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            args, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    deadline = time.monotonic() + 60
    while "listening on" not in out.read_text(errors="replace"):
        assert proc.poll() is None, out.read_text(errors="replace")
        assert time.monotonic() < deadline, out.read_text(errors="replace")
        time.sleep(0.2)
    return proc
