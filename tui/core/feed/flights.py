"""Requests in flight: their provisional rows joined to the slot working on them, with progress and ETA."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tui.core.journal.outcome import CLIENT_GAVE_UP
from tui.core.logs.state import SlotState
from tui.core.records import RequestRecord

# Claude Code drops a stream that stays silent this long (observed ~300 s, API_TIMEOUT_MS or not) and
# retries the whole request: a prefill expected to take longer is warned about before it happens.
AGENT_SILENCE_S = {"anthropic": 300.0}
# Rates measured over less than this are too noisy to give an ETA.
MIN_RATE_WINDOW_S = 0.5


@dataclass(frozen=True)
class FlightProgress:
    """What the server is doing with one in-flight request, as the log tells."""

    record_id: int
    started: float  # the request's wall time
    slot: int | None = None
    phase: str = "waiting"  # waiting (no slot seen yet) | prompt | generating
    progress: float | None = None
    prompt_tokens: int | None = None
    reused_tokens: int | None = None
    rate: float | None = None  # prompt tokens per second while this prompt ran
    eta_s: float | None = None
    silence_limit_s: float | None = None  # the agent's known give-up time, when it is known
    done_tokens: int | None = None  # prompt tokens in the slot so far, when only /slots tells (no share)

    @property
    def short(self) -> str:
        """A few characters for a table cell: the prompt share done, or the phase."""
        if self.phase == "prompt" and self.progress is not None:
            return f"{min(99, int(self.progress * 100))}%"
        return "gen" if self.phase == "generating" else "…"

    def text(self, now: float | None = None) -> str:
        """One line: "processing 64% of 27,699 at 28 t/s, ETA 3 min" and a warning when it runs late."""
        elapsed = (now if now is not None else time.time()) - self.started
        if self.phase == "waiting":
            return f"forwarded {_duration(elapsed)} ago, waiting for the server to start it"
        if self.phase == "generating":
            return f"generating (prompt done), {_duration(elapsed)} since it was forwarded"
        words = "processing the prompt"
        if self.progress is not None:
            words = f"processing {self.progress:.0%}"
            if self.prompt_tokens:
                words += f" of {self.prompt_tokens:,}"
        elif self.done_tokens is not None:  # /slots alone (no log): how far it got, not of how many
            where = f" on slot {self.slot}" if self.slot is not None else ""
            words += f"{where}: {self.done_tokens:,} tokens in"
        if self.rate:
            words += f" at {self.rate:,.0f} t/s"
        if self.eta_s is not None:
            words += f", ETA {_duration(self.eta_s)}"
        limit = self.silence_limit_s
        if limit is not None and self.eta_s is not None and elapsed + self.eta_s > limit:
            words += (
                f"; the agent gives up after ~{limit:.0f} s of silence, this prompt needs "
                f"~{elapsed + self.eta_s:.0f} s: expect a retry (use a smaller prompt or a faster server)"
            )
        return words


@dataclass
class _Flight:
    record: RequestRecord
    task: int | None = None
    slot: int | None = None
    first: tuple[float, float] | None = None  # (monotonic time, prompt tokens done) at first sight
    last: FlightProgress | None = None


class FlightTracker:
    """Provisional rows waiting for their final ones; each joined to the slot task that serves it.

    A busy slot's task not yet joined goes to the oldest in-flight request without one (requests
    reach the server in the order the proxy forwarded them).
    """

    def __init__(self) -> None:
        self._flights: dict[int, _Flight] = {}
        # (model or None, task id) -> record id; the model only in router mode
        self._tasks_taken: dict[tuple[str | None, int | None], int] = {}

    def __bool__(self) -> bool:
        return bool(self._flights)

    @property
    def ids(self) -> list[int]:
        """Row ids of the requests in flight."""
        return list(self._flights)

    def add(self, records: Iterable[RequestRecord]) -> None:
        """Follow the provisional rows among these."""
        for record in records:
            # Only model calls take a slot (count_tokens and other paths are answered without one).
            takes_slot = bool(record.dialect) and record.kind != "count_tokens"
            if record.in_flight and takes_slot and record.id > 0 and record.id not in self._flights:
                self._flights[record.id] = _Flight(record)

    def finish(self, record: RequestRecord) -> RequestRecord:
        """Stop following a request; its final row with what the log knew (server counts, progress)."""
        flight = self._flights.pop(record.id, None)
        if flight is None or flight.last is None:
            return record
        last = flight.last
        usage = record.usage
        if usage.prompt_tokens is None and last.prompt_tokens is not None:
            # No usage in the response (the client left, or an error): the server's own count.
            usage = dataclasses.replace(
                usage, prompt_tokens=last.prompt_tokens, cached_tokens=last.reused_tokens
            )
        error = record.error
        gave_up = bool(error) and str(error).startswith(CLIENT_GAVE_UP)
        if error and gave_up and last.phase == "prompt" and last.progress is not None:
            where = f"at {last.progress:.0%} of the prompt"
            if last.prompt_tokens:
                where += f" ({last.prompt_tokens:,} tokens)"
            if last.rate:
                where += f", processing {last.rate:,.0f} t/s"
            error = f"{error} [{where}]"
        if usage is record.usage and error == record.error:
            return record
        return dataclasses.replace(record, usage=usage, error=error)

    def observe(
        self,
        slots: Iterable[SlotState],
        now: float | None = None,
        by_model: Mapping[str, Iterable[SlotState]] | None = None,
    ) -> tuple[FlightProgress, ...]:
        """Progress of every request in flight from the slots' current state.

        by_model (router mode): each model's slots from its own child's log; a request is joined only to
        a task of the model it asked for (each child numbers its slots and tasks from 0).
        """
        clock = time.monotonic() if now is None else now
        groups: dict[str | None, list[SlotState]] = (
            {None: list(slots)} if by_model is None else {m: list(s) for m, s in by_model.items()}
        )
        by_task: dict[tuple[str | None, int | None], SlotState] = {}
        for model, group in groups.items():
            busy = [s for s in group if s.busy and s.task is not None]
            for slot_state in sorted(busy, key=lambda s: s.task or 0):
                key = (model, slot_state.task)
                if key in self._tasks_taken:
                    continue
                waiting = [
                    f for f in self._flights.values()
                    if f.task is None and (model is None or f.record.model == model)
                ]  # fmt: skip
                if not waiting:
                    continue
                flight = min(waiting, key=lambda f: (f.record.ts, f.record.id))
                flight.task, flight.slot = slot_state.task, slot_state.slot
                self._tasks_taken[key] = flight.record.id
            by_task.update({(model, s.task): s for s in busy})
        out = []
        for flight in sorted(self._flights.values(), key=lambda f: f.record.id):
            model = None if by_model is None else flight.record.model
            state = by_task.get((model, flight.task)) if flight.task is not None else None
            progress = self._progress(flight, state, clock)
            flight.last = progress if state is not None else (flight.last or progress)
            out.append(flight.last)
        if len(self._tasks_taken) > 4 * max(1, len(self._flights)) + 64:
            live = {f.task for f in self._flights.values()}
            self._tasks_taken = {k: r for k, r in self._tasks_taken.items() if k[1] in live}
        return tuple(out)

    def _progress(self, flight: _Flight, state: SlotState | None, clock: float) -> FlightProgress:
        record = flight.record
        limit = AGENT_SILENCE_S.get(record.dialect)
        if state is None:
            return FlightProgress(record.id, record.ts, silence_limit_s=limit)
        done = None
        polled = state.prompt_tokens is None and state.n_tokens is not None  # /slots: tokens in, no total
        if state.progress is not None and state.prompt_tokens:
            done = state.progress * state.prompt_tokens
        elif state.phase == "prompt" and polled:
            done = float(state.n_tokens or 0)
        rate = eta = None
        if state.phase == "prompt" and done is not None:
            if flight.first is None:
                flight.first = (clock, done)
            t0, done0 = flight.first
            if clock - t0 >= MIN_RATE_WINDOW_S and done > done0:
                rate = (done - done0) / (clock - t0)
                if state.prompt_tokens:
                    eta = max(0.0, (state.prompt_tokens - done) / rate)
        return FlightProgress(
            record.id, record.ts, state.slot, state.phase, state.progress, state.prompt_tokens,
            state.reused_tokens, rate, eta, limit, int(done) if polled and done is not None else None,
        )


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

