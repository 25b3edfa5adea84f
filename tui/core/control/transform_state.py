"""Runtime transform switches: overrides of [transforms] enabled, persisted in the user data dir."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

from tui.core.actions.state_files import data_dir, file_signature, read_json, write_json_atomic
from tui.core.transforms.registry import TRANSFORM_ORDER

STATE_FILE = "transform_switches.json"


def default_state_path() -> Path:
    """The transform switch file in the user data dir."""
    return data_dir() / STATE_FILE


class TransformSwitchStore:
    """Names switched on/off at runtime over the configured list; re-read only when the file changed."""

    def __init__(self, configured: Sequence[str] = (), path: Path | None = None) -> None:
        self.path = path or default_state_path()
        self.configured = tuple(configured)
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._on: frozenset[str] = frozenset()
        self._off: frozenset[str] = frozenset()
        self._enabled: tuple[str, ...] = ()
        self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        signature = file_signature(self.path)
        if not force and signature == self._signature and signature is not None:
            return
        data = read_json(self.path) if signature is not None else None
        data = data if isinstance(data, dict) else {}
        self._on = frozenset(n for n in data.get("on", []) if n in TRANSFORM_ORDER)
        self._off = frozenset(n for n in data.get("off", []) if n in TRANSFORM_ORDER)
        wanted = (set(self.configured) | self._on) - self._off
        self._enabled = tuple(n for n in TRANSFORM_ORDER if n in wanted)
        self._signature = signature

    def enabled(self) -> tuple[str, ...]:
        """Transforms that run right now, in run order (cheap: one stat per call)."""
        with self._lock:
            self._reload()
            return self._enabled

    def overrides(self) -> dict[str, list[str]]:
        """The runtime overrides (`on`, `off`) over the configured list."""
        with self._lock:
            self._reload()
            return {"on": sorted(self._on), "off": sorted(self._off)}

    def set_enabled(self, name: str, enabled: bool) -> tuple[str, ...]:
        """Switch one transform on or off and persist; returns the new enabled list."""
        if name not in TRANSFORM_ORDER:
            raise ValueError(f"unknown transform {name!r}; valid: {', '.join(TRANSFORM_ORDER)}")
        with self._lock:
            self._reload()
            on, off = set(self._on), set(self._off)
            (on if enabled else off).add(name)
            (off if enabled else on).discard(name)
            if name in self.configured:
                on.discard(name)  # the config already says on: no override needed
            else:
                off.discard(name)
            write_json_atomic(
                self.path, {"version": 1, "on": sorted(on), "off": sorted(off), "updated": time.time()}
            )
            self._reload(force=True)
            return self._enabled
