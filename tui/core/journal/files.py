"""The journal's files on disk: private permissions, and moving a bad file aside."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
# SQLite's companions of a journal file (they hold rows too, so they are as private as the file).
COMPANION_SUFFIXES = ("-wal", "-shm")


def private_dir(directory: Path) -> None:
    """Create a directory (and missing parents) readable by the owner only; existing ones are kept."""
    if not directory.is_dir():
        directory.mkdir(parents=True, mode=DIR_MODE, exist_ok=True)
        with contextlib.suppress(OSError):
            directory.chmod(DIR_MODE)  # mkdir's mode is filtered by the umask


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if missing; tighten it to 0600 if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def make_private(path: Path) -> None:
    """The journal's directory 0700 (when created here) and the journal, WAL and SHM files 0600.

    SQLite creates the WAL and SHM files with the journal file's permissions; existing ones are
    tightened here so a journal written by an older version becomes private too.
    """
    private_dir(path.parent)
    private_file(path)
    for suffix in COMPANION_SUFFIXES:
        companion = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            if companion.stat().st_mode & 0o077:
                companion.chmod(FILE_MODE)


def set_aside(path: Path) -> Path:
    """Rename a bad journal (and its WAL/SHM) to `<name>.corrupt-<UTC timestamp>`; the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    path.rename(target)
    for suffix in COMPANION_SUFFIXES:
        companion = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            companion.rename(target.with_name(target.name + suffix))
    return target
