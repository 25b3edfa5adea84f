"""Captures not yet journaled, appended to local files so a killed proxy replays them on its next start.

Each record is `<key length, payload length, crc32>` + key + payload (the pickled capture the worker
gets). A segment is deleted once every capture in it is journaled; the owner holds an flock on its
segments, so a second proxy on the same journal never replays a live proxy's spool. Writes are not
fsynced: a killed process loses nothing written, a power cut may lose the last unsynced bytes (a torn
record at the end is skipped on replay).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from tui.core.journal.files import FILE_MODE, private_dir

log = logging.getLogger(__name__)

RECORD_HEADER = struct.Struct("<HII")
SEGMENT_BYTES = 8 * 1024 * 1024
SUFFIX = ".spool"


def spool_dir(journal_path: Path) -> Path:
    """Where the spool of a journal lives (next to it, as private as it)."""
    return journal_path.with_name(journal_path.name + "-spool")


@dataclass
class _Segment:
    path: Path
    fd: int
    size: int = 0
    outstanding: int = 0


class Spool:
    """Append-only segments of (key, payload); `ack(key)` once the capture's row is committed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.run_id = f"{time.time_ns():020d}-{os.getpid()}"
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._current: _Segment | None = None
        self._where: dict[str, tuple[_Segment, int, int]] = {}  # key -> segment, offset, length
        self._next_segment = 0

    def recover(self) -> list[str]:
        """Keys of captures left by proxies that died before journaling them (oldest first); now ours."""
        private_dir(self.directory)
        found: list[str] = []
        for path in sorted(self.directory.glob("*" + SUFFIX)):
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)  # a live proxy's segment
                continue
            records = _read_records(fd)
            segment = _Segment(path, fd, os.fstat(fd).st_size, len(records))
            with self._lock:
                self._segments.append(segment)
                for key, offset, length in records:
                    self._where[key] = (segment, offset, length)
                    found.append(key)
                if not records:
                    self._drop(segment)
        if found:
            log.warning("replaying %d captures an earlier proxy spooled but did not journal", len(found))
        return found

    def append(self, key: str, payload: bytes) -> None:
        """Write one record (raises OSError, e.g. on a full disk: the capture is then only in memory)."""
        key_bytes = key.encode()
        header = RECORD_HEADER.pack(len(key_bytes), len(payload), zlib.crc32(payload, zlib.crc32(key_bytes)))
        size = len(header) + len(key_bytes) + len(payload)
        with self._lock:
            segment = self._current
            if segment is None or segment.size >= SEGMENT_BYTES:
                segment = self._rotate()
            try:
                # One gathered write: joining the record first would copy the payload with the GIL held.
                written = os.writev(segment.fd, (header, key_bytes, payload))
                if written != size:
                    raise OSError(f"short write to the spool {segment.path} (disk full?)")
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(segment.fd, segment.size)  # no torn record before later ones
                raise
            self._where[key] = (segment, segment.size + size - len(payload), len(payload))
            segment.size += written
            segment.outstanding += 1

    def read(self, key: str) -> bytes | None:
        """The payload spooled under `key` (None once acknowledged)."""
        with self._lock:
            where = self._where.get(key)
            if where is None:
                return None
            segment, offset, length = where
            return os.pread(segment.fd, length, offset)

    def ack(self, key: str) -> None:
        """The capture is journaled (or given up): forget it; delete segments with nothing left."""
        with self._lock:
            where = self._where.pop(key, None)
            if where is None:
                return
            segment = where[0]
            segment.outstanding -= 1
            if segment.outstanding <= 0 and (segment is not self._current or segment.size >= SEGMENT_BYTES):
                self._drop(segment)

    def close(self) -> None:
        """Release the segments; those with captures not yet journaled stay for the next start."""
        with self._lock:
            for segment in list(self._segments):
                if segment.outstanding <= 0:
                    self._drop(segment)
                else:
                    os.close(segment.fd)
                    self._segments.remove(segment)
            self._current = None
            self._where.clear()

    @property
    def pending(self) -> int:
        """Captures in the spool not yet acknowledged."""
        return len(self._where)

    def _rotate(self) -> _Segment:
        if self._current is not None and self._current.outstanding <= 0:
            self._drop(self._current)
        private_dir(self.directory)
        self._next_segment += 1
        path = self.directory / f"{self.run_id}-{self._next_segment:06d}{SUFFIX}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_EXCL, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        segment = _Segment(path, fd)
        self._segments.append(segment)
        self._current = segment
        return segment

    def _drop(self, segment: _Segment) -> None:
        with contextlib.suppress(OSError):
            segment.path.unlink()
        with contextlib.suppress(OSError):
            os.close(segment.fd)
        if segment in self._segments:
            self._segments.remove(segment)
        if segment is self._current:
            self._current = None


def _read_records(fd: int) -> list[tuple[str, int, int]]:
    """(key, payload offset, payload length) of every intact record; stops at a torn or damaged one."""
    size = os.fstat(fd).st_size
    data = os.pread(fd, size, 0)
    records: list[tuple[str, int, int]] = []
    offset = 0
    while offset + RECORD_HEADER.size <= len(data):
        key_len, payload_len, crc = RECORD_HEADER.unpack_from(data, offset)
        start = offset + RECORD_HEADER.size
        end = start + key_len + payload_len
        if end > len(data):
            break
        key_bytes = data[start : start + key_len]
        payload = data[start + key_len : end]
        if zlib.crc32(payload, zlib.crc32(key_bytes)) != crc:
            log.error("spool segment damaged after %d records; the rest is skipped", len(records))
            break
        records.append((key_bytes.decode(errors="replace"), start + key_len, payload_len))
        offset = end
    return records
