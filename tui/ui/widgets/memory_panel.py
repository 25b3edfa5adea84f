"""KV cache fill per slot and memory: VRAM used/total with llama-server's share and power, or CPU facts."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tui.core.logs.state import ServerFacts
from tui.core.poll.kv_sharing import kv_sharing
from tui.core.poll.snapshots import GpuSnapshot, ServerSnapshot, SlotSnapshot
from tui.ui.format import flow, gauge, gib_bytes, mib, percent, tokens


class MemoryPanel(Widget):
    """Slot gauges on one line (wrapping), memory facts on the next."""

    COMPONENT_CLASSES = {"memory--dim", "memory--fill", "memory--warning", "memory--danger", "memory--empty"}

    DEFAULT_CSS = """
    MemoryPanel { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.server: ServerSnapshot | None = None
        self.gpu: GpuSnapshot | None = None
        self.facts = ServerFacts()
        self._shown_key: object = None

    def show(
        self,
        server: ServerSnapshot | None = None,
        gpu: GpuSnapshot | None = None,
        facts: ServerFacts | None = None,
    ) -> None:
        """Replace the parts given."""
        self.server = server or self.server
        self.gpu = gpu or self.gpu
        self.facts = facts or self.facts
        key = (_server_key(self.server), _gpu_key(self.gpu), self.facts)
        if key != self._shown_key:
            self._shown_key = key
            self.refresh(layout=True)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"memory--{name}", partial=True)

    def render(self) -> Text:
        """Two flows: KV slots, then memory."""
        width = max(20, self.size.width)
        dim = self._style("dim")
        kv: list[Text] = [Text("KV", style="bold")]
        server = self.server
        if server is None or not server.slots:
            why = "no slot data yet" if server is None or server.state == "up" else f"server {server.state}"
            if server is not None and server.notes:
                why = server.notes[0]
            kv.append(Text(why, style=dim))
        else:
            # Router mode: each loaded model's own slots, under its name; one server: its slots.
            groups = [(m.id, m.slots) for m in server.models if m.slots] or [("", server.slots)]
            many = sum(len(slots) for _, slots in groups) > 4
            for name, slots in groups:
                if name:
                    kv.append(Text(name, style="bold"))
                kv.extend(self._slot_entry(slot, many, dim) for slot in slots)
            sharing = self._sharing_entry(dim)
            if sharing is not None:
                kv.append(sharing)
        return Text("\n").join([flow(kv, width), flow(self._memory_entries(dim), width)])

    def _slot_entry(self, slot: SlotSnapshot, many: bool, dim: Style) -> Text:
        """`s0 ███░░░░░░░▏30% 1.2k`: the slot's KV fill (shorter when there are many)."""
        fill = slot.fill
        style = self._style("danger" if fill >= 0.95 else "warning" if fill >= 0.8 else "fill")
        entry = Text(f"s{slot.id} ", style="bold" if slot.is_processing else "")
        bar = gauge(fill, 6 if many else 10)
        filled = bar.count("█")
        entry.append(bar[:filled], style=style)
        entry.append(bar[filled:], style=self._style("empty"))
        entry.append("▏", style=dim)
        entry.append(f"{percent(fill)}", style=style if fill >= 0.8 else "")
        if not many:
            entry.append(f" {tokens(slot.n_prompt_tokens)}", style=dim)
        return entry

    def _sharing_entry(self, dim: Style) -> Text | None:
        """What a slot really gets: the shared pool's fill, a fixed part per slot, or unknown."""
        sharing = kv_sharing(self.facts, self.server)
        fill = sharing.pool_fill(self.server)
        if sharing.mode == "shared" and fill is not None:
            style = self._style("danger" if fill >= 0.95 else "warning" if fill >= 0.8 else "fill")
            return Text.assemble(
                ("pool ", dim), (percent(fill), style), (f" of {tokens(sharing.pool)} shared", dim)
            )
        if sharing.mode == "split":
            return Text(f"split: {tokens(sharing.per_slot)} per slot", style=dim)
        if sharing.mode == "unknown":
            return Text("pool sharing unknown (no startup log)", style=dim)
        return None

    def _memory_entries(self, dim: Style) -> list[Text]:
        gpu = self.gpu
        facts = self.facts
        entries: list[Text] = []
        if gpu is not None and gpu.available and gpu.devices:
            used, total = gpu.mem_used, gpu.mem_total
            fill = used / total if total else 0.0
            style = self._style("danger" if fill >= 0.95 else "warning" if fill >= 0.85 else "fill")
            entries.append(
                Text.assemble(("VRAM ", "bold"), (f"{gib_bytes(used)}", style), f" / {gib_bytes(total)}")
            )
            if gpu.server_process_vram is not None:
                entries.append(Text.assemble(("llama-server ", dim), gib_bytes(gpu.server_process_vram)))
            if gpu.power_w is not None:
                limit = sum(d.power_limit_w or 0 for d in gpu.devices)
                entries.append(
                    Text.assemble(
                        ("power ", dim), f"{gpu.power_w:.0f} W", (f" / {limit:.0f} W" if limit else "", dim)
                    )
                )
            utils = [d.util_pct for d in gpu.devices if d.util_pct is not None]
            if utils:
                entries.append(Text.assemble(("util ", dim), f"{sum(utils) / len(utils):.0f}%"))
            return entries
        entries.append(Text("CPU", style="bold"))
        if gpu is not None and gpu.reason:
            entries.append(Text(gpu.reason, style=dim))
        buffers = gpu.buffers if gpu is not None else ()
        kv = sum(b.kv_mib for b in buffers) or facts.buffer_mib("kv") or facts.kv_cache_mib
        model = sum(b.model_mib for b in buffers) or facts.buffer_mib("model")
        compute = sum(b.compute_mib for b in buffers) or facts.buffer_mib("compute")
        for name, value in (("KV", kv), ("model", model), ("compute", compute)):
            if value:
                entries.append(Text.assemble((f"{name} ", dim), mib(value)))
        if gpu is not None and gpu.process_rss:
            entries.append(Text.assemble(("RSS ", dim), gib_bytes(gpu.process_rss)))
        if len(entries) <= 2 and gpu is None:
            entries.append(Text("waiting for the first memory sample", style=dim))
        return entries


def _server_key(server: ServerSnapshot | None) -> object:
    """What the panel shows of a poll (snapshots differ in time stamps every poll)."""
    if server is None:
        return None
    slots = tuple((s.id, s.n_ctx, s.n_prompt_tokens, s.is_processing) for s in server.slots)
    models = tuple(
        (m.id, tuple((s.id, s.n_ctx, s.n_prompt_tokens, s.is_processing) for s in m.slots))
        for m in server.models
    )
    return (server.state, slots, server.notes, models)


def _gpu_key(gpu: GpuSnapshot | None) -> object:
    """What the panel shows of a GPU sample, at the precision it shows it."""
    if gpu is None:
        return None
    mib_ = 1024 * 1024
    devices = tuple(
        (
            d.mem_used // (100 * mib_),
            d.mem_total,
            round(d.power_w or 0),
            d.power_limit_w,
            round(d.util_pct or 0),
        )
        for d in gpu.devices
    )
    rss = (gpu.process_rss or 0) // (1024 * 1024)
    vram = (gpu.server_process_vram or 0) // (100 * mib_)
    return (gpu.available, gpu.reason, devices, vram, gpu.buffers, rss)
