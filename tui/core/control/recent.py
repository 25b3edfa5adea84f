"""Raw model request bodies kept per user for a later compaction (parsed only when one is asked for)."""

from __future__ import annotations

import itertools
import threading
from collections import deque

# At most this many bodies per user, and at most RECENT_BYTES together (the oldest overall go first).
RECENT_BODIES = 8
RECENT_BYTES = 64 * 1024 * 1024

Kept = tuple[bytes, str, str]  # raw body, dialect, session hint


class RecentBodies:
    """The latest request bodies of each user, bounded in count per user and in bytes overall."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_user: dict[str, deque[tuple[int, Kept]]] = {}
        self._order = itertools.count()
        self.total_bytes = 0

    def __bool__(self) -> bool:
        return self.total_bytes > 0 or any(self._by_user.values())

    def add(self, user: str, body: bytes, dialect: str, session: str) -> None:
        """Keep one body (dropping that user's oldest past RECENT_BODIES, then the oldest overall)."""
        with self._lock:
            kept = self._by_user.setdefault(user, deque())
            if len(kept) >= RECENT_BODIES:
                self.total_bytes -= len(kept.popleft()[1][0])
            kept.append((next(self._order), (body, dialect, session)))
            self.total_bytes += len(body)
            while self.total_bytes > RECENT_BYTES:
                oldest = min((q for q in self._by_user.values() if q), key=lambda q: q[0][0])
                self.total_bytes -= len(oldest.popleft()[1][0])

    def clear(self, user: str) -> None:
        """Forget one user's bodies (their compaction service sees every body from now on)."""
        with self._lock:
            kept = self._by_user.pop(user, None)
            if kept:
                self.total_bytes -= sum(len(k[0]) for _, k in kept)

    def of(self, user: str) -> list[Kept]:
        """One user's kept bodies, oldest first."""
        with self._lock:
            return [k for _, k in self._by_user.get(user, ())]
