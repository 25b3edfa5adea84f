"""Server facts learnt from startup lines: model, slots, context sizes, buffers, build, state."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from tui.core.logs import events as ev
from tui.core.logs.state import BufferFact, ServerFacts

_CONTEXT_INTS = {
    "n_ctx": "n_ctx",
    "n_ctx_seq": "n_ctx_seq",
    "n_seq_max": "n_seq_max",
    "n_batch": "n_batch",
    "n_ubatch": "n_ubatch",
}
_MAX_WARNINGS = 32
_MAX_BUFFERS = 64


@dataclass
class FactsTracker:
    """Folds startup events into a ServerFacts snapshot."""

    facts: ServerFacts = field(default_factory=ServerFacts)
    generation: int = 0

    def feed_many(self, events: list[ev.LogEvent]) -> None:
        """Feed events in log order."""
        for event in events:
            self.feed(event)

    def _warn(self, text: str) -> tuple[str, ...]:
        return (*self.facts.warnings, text)[-_MAX_WARNINGS:]

    def feed(self, e: ev.LogEvent) -> None:  # noqa: C901 - flat dispatch over event types
        """Update the facts with one event."""
        f = self.facts
        new: ServerFacts | None = None
        if isinstance(e, ev.BuildInfo):
            new = ServerFacts(state="loading", build=e.build, commit=e.commit)
        elif isinstance(e, ev.ModelLoading):
            # a new load (start, restart or wake): sizes are printed again
            new = replace(f, state="loading", model=e.model, buffers=(), kv_cache_mib=None, load_error=None)
        elif isinstance(e, ev.ModelLoadFailed):
            new = replace(f, state="failed", load_error=f"failed to load model {e.model}".strip())
        elif isinstance(e, ev.ModelLoaded):
            new = replace(f, state="up")
        elif isinstance(e, ev.Listening):
            new = replace(f, url=e.url, state="up" if f.state in ("loading", "unknown") else f.state)
        elif isinstance(e, ev.ServerInit):
            new = replace(
                f,
                n_slots=e.n_slots,
                n_ctx_slot=e.n_ctx_slot if e.n_ctx_slot is not None else f.n_ctx_slot,
                kv_unified=e.kv_unified if e.kv_unified is not None else f.kv_unified,
            )
        elif isinstance(e, ev.SlotInit):
            if f.n_ctx_slot is None:
                new = replace(f, n_ctx_slot=e.n_ctx_slot)
        elif isinstance(e, ev.ModelInfo):
            if e.name == "n_ctx_train" and e.value is not None:
                new = replace(f, n_ctx_train=e.value)
            elif e.name == "n_swa" and e.value is not None:
                new = replace(f, n_swa=e.value)
        elif isinstance(e, ev.ContextParam):
            attr = _CONTEXT_INTS.get(e.name)
            if attr is not None and e.value is not None:
                changes: dict[str, Any] = {attr: e.value}
                new = replace(f, **changes)
            elif e.name == "flash_attn":
                new = replace(f, flash_attn=e.text)
            elif e.name == "kv_unified":
                new = replace(f, kv_unified=e.text.lower() in ("true", "1"))
        elif isinstance(e, ev.FlashAttention):
            new = replace(f, flash_attn="enabled" if e.enabled else "disabled")
        elif isinstance(e, ev.TrainContextCapped):
            where = "slot context" if e.source == "server" else "n_ctx_seq"
            new = replace(
                f,
                warnings=self._warn(
                    f"{where} {e.n_ctx} exceeds the training context {e.n_ctx_train}"
                    + (" (capped)" if e.source == "server" else "")
                ),
            )
        elif isinstance(e, ev.BufferSize):
            new = replace(f, buffers=(*f.buffers, BufferFact(e.buffer, e.device, e.size_mib))[-_MAX_BUFFERS:])
        elif isinstance(e, ev.KvCacheSize):
            new = replace(f, kv_cache_mib=round((f.kv_cache_mib or 0.0) + e.size_mib, 3))
        elif isinstance(e, ev.SleepState):
            new = replace(f, state="sleeping" if e.sleeping else "up")
        elif isinstance(e, ev.ServerStopping):
            new = replace(f, state="stopped")
        if new is not None:
            self.facts = replace(new, updated_ts=e.ts if e.ts is not None else f.updated_ts)
            self.generation += 1
