"""What a slot really gets: the whole KV pool shared by all slots, or its own part, as the server says."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tui.core.logs.state import ServerFacts
from tui.core.poll.snapshots import ServerSnapshot

SharingMode = Literal["single", "shared", "split", "unknown"]
UNKNOWN_WHY = "whether the slots share one KV pool is unknown: the server's startup log was not read"


@dataclass(frozen=True)
class KvSharing:
    """How the KV cells are divided between slots; `source` names where that was read."""

    mode: SharingMode
    n_slots: int | None = None
    per_slot: int | None = None  # the most tokens one slot can hold (llama-server's n_ctx_slot)
    pool: int | None = None  # KV cells allocated in all (n_ctx; n_slots × per-slot context when split)
    source: str = ""  # "startup log (kv_unified = true)", "/slots and the log's n_ctx", ...

    @property
    def short(self) -> str:
        """One word for the header: "shared", "each" or ""."""
        return {"shared": "shared", "split": "each"}.get(self.mode, "")

    def describe(self) -> str:
        """One sentence: what one request can use and what concurrent ones do to each other."""
        slots, per, pool = self.n_slots or 0, _tok(self.per_slot), _tok(self.pool)
        if self.mode == "single":
            return f"1 slot: one request can use all {per} tokens"
        if self.mode == "shared":
            return (
                f"{slots} slots share one unified KV pool of {pool} cells: one request can use up to {per} "
                "tokens, concurrent requests take from the same pool (idle slots may be purged)"
            )
        if self.mode == "split":
            return f"the KV cache is split across {slots} slots: each request gets {per} tokens at most"
        return UNKNOWN_WHY

    def pool_fill(self, server: ServerSnapshot | None) -> float | None:
        """Tokens held by all slots over the shared pool (None unless the pool is shared and known)."""
        if self.mode != "shared" or not self.pool or server is None or not server.slots:
            return None
        return sum(s.n_prompt_tokens for s in server.slots) / self.pool


def kv_sharing(facts: ServerFacts, server: ServerSnapshot | None = None) -> KvSharing:
    """Read from the server: /props and /slots (slot count and size), the startup log (kv_unified, n_ctx).

    Never from the launch flags: a server started elsewhere, or with -np auto, decides for itself.
    """
    n_slots = (server.n_slots if server is not None and server.n_slots else None) or facts.n_slots
    per_slot = (server.n_ctx_slot if server is not None and server.n_ctx_slot else None) or facts.n_ctx_slot
    if n_slots == 1:
        return KvSharing("single", 1, per_slot, facts.n_ctx or per_slot, "/props")
    if not n_slots:
        return KvSharing("unknown")
    if facts.kv_unified is True:
        pool = facts.n_ctx or per_slot
        return KvSharing("shared", n_slots, per_slot, pool, "startup log (kv_unified = true)")
    if facts.kv_unified is False:
        pool = facts.n_ctx or (per_slot * n_slots if per_slot else None)
        return KvSharing("split", n_slots, per_slot, pool, "startup log (kv_unified = false)")
    if facts.n_ctx and per_slot and per_slot * n_slots > facts.n_ctx:
        # More slot room than cells: the slots can only be sharing one pool.
        return KvSharing("shared", n_slots, per_slot, facts.n_ctx, "/slots and the log's n_ctx")
    return KvSharing("unknown", n_slots, per_slot)


def _tok(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"
