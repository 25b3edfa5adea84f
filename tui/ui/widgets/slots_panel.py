"""Per slot: current task, live prompt-processing progress, generation, checkpoints with restores/erases."""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

from tui.core.logs.state import SlotState
from tui.core.poll.snapshots import ServerSnapshot, SlotSnapshot
from tui.core.terminal_text import printable
from tui.ui.format import flow, gauge, grouped, mib, percent, rate, tokens

MAX_CHECKPOINTS_SHOWN = 12


class SlotsPanel(Widget):
    """One block per slot, from the log (SlotState) and the poller (fill, decode rate)."""

    COMPONENT_CLASSES = {"slots--dim", "slots--progress", "slots--restored", "slots--erased", "slots--busy"}

    DEFAULT_CSS = """
    SlotsPanel { height: auto; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.states: tuple[SlotState, ...] = ()
        self.server: ServerSnapshot | None = None
        self.users: dict[int, str] = {}  # team mode: whose request each slot last served
        self._shown_key: object = None
        self.hint = "no slot activity yet (the log and /slots show it once a request runs)"

    def show(
        self,
        states: tuple[SlotState, ...] | None = None,
        server: ServerSnapshot | None = None,
        users: tuple[tuple[int, str], ...] | None = None,
    ) -> None:
        """Replace the parts given."""
        if states is not None:
            self.states = states
        if users is not None:
            self.users = dict(users)
        if server is not None:
            self.server = server
        polled = tuple(
            (model, s.id, s.n_ctx, s.n_prompt_tokens, s.is_processing, s.id_task, round(s.decode_rate or 0))
            for model, slots in self._polled_groups()
            for s in slots
        )
        key = (self.states, polled, tuple(self.users.items()))
        if key != self._shown_key:
            self._shown_key = key
            self.refresh(layout=True)

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"slots--{name}", partial=True)

    def _polled_groups(self) -> list[tuple[str, tuple[SlotSnapshot, ...]]]:
        """The polled slots, per model on a router with several models loaded (each numbers from 0)."""
        if self.server is None:
            return []
        models = [(m.id, m.slots) for m in self.server.models if m.slots]
        return models if len(models) > 1 else [("", self.server.slots)]

    def render(self) -> Text:
        """Slot blocks, one after the other (under each model's name on a router running several)."""
        width = max(20, self.size.width)
        groups = self._polled_groups()
        if len(groups) > 1:
            # The log's slot states cannot be told apart per model here: each model's polled slots alone.
            parts = []
            for model, slots in groups:
                parts.append(Text(printable(model), style="bold underline"))
                parts.extend(self._block(s.id, None, s, width) for s in slots)
            return Text("\n").join(parts)
        polled = {s.id: s for s in groups[0][1]} if groups else {}
        by_id = {s.slot: s for s in self.states}
        ids = sorted(set(polled) | set(by_id))
        if not ids:
            return Text(self.hint, style=self._style("dim"))
        return Text("\n").join(self._block(i, by_id.get(i), polled.get(i), width) for i in ids)

    def _block(self, slot_id: int, state: SlotState | None, polled: SlotSnapshot | None, width: int) -> Text:
        dim = self._style("dim")
        busy = bool(polled and polled.is_processing) or bool(state and state.busy)
        head: list[Text] = [Text(f"slot {slot_id}", style=self._style("busy") if busy else "bold")]
        task = (
            state.task if state and state.task is not None else (polled.id_task if polled and busy else None)
        )
        phase = state.phase if state else ("busy" if busy else "idle")
        if task is not None:
            head.append(Text.assemble(("task ", dim), str(task)))
        elif state and state.last_task is not None:
            head.append(Text.assemble(("last task ", dim), str(state.last_task)))
        head.append(Text(phase, style=self._style("busy") if busy else dim))
        user = self.users.get(slot_id)
        if user:
            head.append(Text.assemble(("user ", dim), printable(user)))
        n_ctx = (polled.n_ctx if polled else 0) or (state.n_ctx if state else 0) or 0
        in_slot = polled.n_prompt_tokens if polled else (state.n_tokens if state else None)
        if n_ctx and in_slot is not None:
            head.append(
                Text.assemble(
                    ("ctx ", dim), f"{tokens(in_slot)}/{tokens(n_ctx)}", (f" {percent(in_slot / n_ctx)}", dim)
                )
            )
        lines = [flow(head, width)]
        if state is not None:
            lines.extend(self._state_lines(state, polled, width))
        return Text("\n").join(lines)

    def _state_lines(self, state: SlotState, polled: SlotSnapshot | None, width: int) -> list[Text]:
        dim = self._style("dim")
        lines: list[Text] = []
        if state.phase == "prompt" and state.progress is not None:
            bar_width = max(10, min(40, width - 28))
            line = Text("  prompt ", style=dim)
            line.append(gauge(state.progress, bar_width), style=self._style("progress"))
            line.append(f" {percent(state.progress)}")
            if state.prompt_tokens:
                line.append(f" of {grouped(state.prompt_tokens)}", style=dim)
            lines.append(line)
        facts: list[Text] = []
        if state.prompt_tokens is not None:
            facts.append(Text.assemble(("prompt ", dim), grouped(state.prompt_tokens)))
        if state.reused_tokens is not None:
            facts.append(Text.assemble(("reused ", dim), grouped(state.reused_tokens)))
        if state.n_gen is not None:
            facts.append(Text.assemble(("generated ", dim), grouped(state.n_gen)))
        if polled is not None and polled.decode_rate:
            facts.append(Text.assemble(("tg ", dim), f"{rate(polled.decode_rate)} t/s"))
        if state.truncated:
            facts.append(Text("context full (truncated)", style=self._style("erased")))
        if facts:
            lines.append(Text("  ") + flow(facts, width - 2))
        if state.checkpoints:
            lines.append(self._checkpoints(state, width))
        return lines

    def _checkpoints(self, state: SlotState, width: int) -> Text:
        dim = self._style("dim")
        restores = sum(c.restores for c in state.checkpoints)
        erased = sum(1 for c in state.checkpoints if c.state == "erased")
        head = Text.assemble(
            ("  checkpoints ", dim),
            str(state.live_checkpoints),
            (f" ({mib(state.checkpoint_mib)})", dim),
            ("  restored ", dim),
            (str(restores), self._style("restored") if restores else dim),
            ("  erased ", dim),
            (str(erased), self._style("erased") if erased else dim),
        )
        entries: list[Text] = []
        shown = state.checkpoints[-MAX_CHECKPOINTS_SHOWN:]
        first_index = len(state.checkpoints) - len(shown) + 1
        for number, cp in enumerate(shown, start=first_index):
            lo = grouped(cp.pos_min) if cp.pos_min is not None else "?"
            hi = grouped(cp.pos_max) if cp.pos_max is not None else "?"
            entry = Text(f"#{number} {lo}–{hi}")
            if cp.size_mib is not None:
                entry.append(f" {mib(cp.size_mib)}", style=dim)
            if cp.restores:
                entry.append(f" ↺{cp.restores}", style=self._style("restored"))
            if cp.state == "erased":
                entry.stylize(self._style("erased"))
                entry.append(
                    f" ✗{(' ' + cp.erase_reason) if cp.erase_reason else ''}", style=self._style("erased")
                )
            entries.append(entry)
        listed = flow(entries, max(10, width - 4), gap=" · ").split("\n")
        return Text("\n").join([head, *(Text("    ") + line for line in listed)])
