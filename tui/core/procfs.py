"""Process facts from /proc: liveness with pid-reuse protection, names, who owns a TCP port, memory."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

PROC = Path("/proc")
TCP_LISTEN = "0A"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0", ""}


def start_time(pid: int) -> int | None:
    """The process start time in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _state(pid: int) -> str:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return ""
    return stat[stat.rfind(")") + 2 :].split(" ", 1)[0]


def is_alive(pid: int, started: int | None = None) -> bool:
    """Whether the process runs (not a zombie) and, when `started` is given, is the same process."""
    if pid <= 0:
        return False
    state = _state(pid)
    if not state or state in ("Z", "X"):
        return False
    return started is None or start_time(pid) == started


def command_line(pid: int) -> list[str]:
    """argv of a process (empty when it is gone or unreadable)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def process_name(pid: int) -> str:
    """The kernel's short command name (comm)."""
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def children(pid: int) -> list[int]:
    """Direct child pids (from /proc/PID/task/*/children)."""
    out: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return out


def descendants(pid: int, limit: int = 200) -> list[int]:
    """All descendant pids, breadth first (bounded)."""
    found: list[int] = []
    queue = children(pid)
    while queue and len(found) < limit:
        child = queue.pop(0)
        found.append(child)
        queue += children(child)
    return found


def listening_inodes(port: int, proc: Path = PROC) -> set[str]:
    """Socket inodes listening on a TCP port (IPv4 and IPv6)."""
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != TCP_LISTEN:
                continue
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port:
                inodes.add(fields[9])
    return inodes


def port_owner_pids(port: int, proc: Path = PROC) -> list[int]:
    """Pids holding a listening socket on the port (only processes whose fds we may read)."""
    inodes = listening_inodes(port, proc)
    if not inodes:
        return []
    targets = {f"socket:[{inode}]" for inode in inodes}
    owners: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    owners.append(int(entry.name))
                    break
            except OSError:
                continue
    return sorted(owners)


def find_listening_pid(port: int, proc: Path = PROC) -> int | None:
    """The (lowest) pid that listens on TCP `port`, None if not found or not ours to inspect."""
    owners = port_owner_pids(port, proc)
    return owners[0] if owners else None


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


def terminate(pid: int, timeout: float, poll: float = 0.05) -> str:
    """SIGTERM, wait up to `timeout`, then SIGKILL; returns "exited", "killed" or "gone"."""
    started = start_time(pid)
    if started is None or not is_alive(pid, started):
        return "gone"
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "gone"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, started):
            return "exited"
        time.sleep(poll)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "exited"
    deadline = time.monotonic() + 5.0
    while is_alive(pid, started) and time.monotonic() < deadline:
        time.sleep(poll)
    return "killed"
