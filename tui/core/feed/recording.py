"""Demo recordings: timed journal rows, log lines and poller snapshots in one JSON-lines file."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

EntryType = Literal["record", "log", "server", "gpu", "body"]
DEMO_DIR = Path(__file__).resolve().parent.parent.parent / "demo_data"
DEMO_RECORDING = DEMO_DIR / "session.jsonl.gz"


@dataclass(frozen=True)
class RecordingEntry:
    """One recorded observation, `t` seconds after the recording started."""

    t: float
    type: EntryType
    data: Any


@dataclass(frozen=True)
class Recording:
    """A whole recording: what it was made with (meta) and its entries in time order."""

    meta: dict[str, Any]
    entries: tuple[RecordingEntry, ...]
    bodies: dict[int, bytes] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Seconds from the first to the last entry."""
        return self.entries[-1].t if self.entries else 0.0


def _open_text(path: Path, mode: str) -> Any:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return path.open(mode, encoding="utf-8")


def load_recording(path: Path = DEMO_RECORDING) -> Recording:
    """Read a recording; the first line is {"meta": {...}}, then one entry per line."""
    meta: dict[str, Any] = {}
    entries: list[RecordingEntry] = []
    bodies: dict[int, bytes] = {}
    with _open_text(path, "r") as handle:
        for number, line in enumerate(handle):
            if not line.strip():
                continue
            item = json.loads(line)
            if number == 0 and "meta" in item:
                meta = dict(item["meta"])
                continue
            if item["type"] == "body":
                bodies[int(item["data"]["id"])] = str(item["data"]["text"]).encode("utf-8")
                continue
            entries.append(RecordingEntry(float(item["t"]), item["type"], item["data"]))
    entries.sort(key=lambda e: e.t)
    return Recording(meta, tuple(entries), bodies)


class RecordingWriter:
    """Appends entries to a recording file as they are observed."""

    def __init__(self, path: Path, meta: dict[str, Any]) -> None:
        self._handle = _open_text(path, "w")
        self._handle.write(json.dumps({"meta": meta}) + "\n")

    def add(self, t: float, type_: EntryType, data: Any) -> None:
        """Write one entry."""
        self._handle.write(json.dumps({"t": round(t, 3), "type": type_, "data": data}) + "\n")

    def close(self) -> None:
        """Flush and close the file."""
        self._handle.close()

