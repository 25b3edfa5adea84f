"""Find the llama-server process behind a local port and read its memory, using /proc only."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

PROC = Path("/proc")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}
_TCP_LISTEN = "0A"


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("net/tcp", "net/tcp6"):
        try:
            lines = (proc / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != _TCP_LISTEN:
                continue
            local_port = int(parts[1].rsplit(":", 1)[1], 16)
            if local_port == port:
                inodes.add(parts[9])
    return inodes


def find_listening_pid(port: int, proc: Path = PROC) -> int | None:
    """The pid that listens on TCP `port` (None if not found or not ours to inspect)."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    targets = {f"socket:[{inode}]" for inode in inodes}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(entry / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(entry / "fd" / fd) in targets:
                    return int(entry.name)
            except OSError:
                continue
    return None


def pid_for_url(url: str, proc: Path = PROC) -> int | None:
    """The local process serving `url`, or None for remote hosts."""
    parts = urlsplit(url)
    if (parts.hostname or "") not in LOCAL_HOSTS:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return find_listening_pid(port, proc)


def process_rss(pid: int, proc: Path = PROC) -> int | None:
    """Resident memory of `pid` in bytes from /proc/<pid>/status (VmRSS), None if unavailable."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024
    return None
