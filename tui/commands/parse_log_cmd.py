"""`ctxbudget parse-log PATH`: the typed events of a llama-server log, then a per-task summary."""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tui.core.config import Settings

if TYPE_CHECKING:
    from tui.core.logs import events as ev
    from tui.core.logs.timeline import RequestTimeline

_COMMON = ("kind", "slot", "task", "ts", "level", "line")


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `parse-log` subcommand."""
    parser = subparsers.add_parser(
        "parse-log",
        help="parse a llama-server log into typed events and per-task summaries",
        description="Print the typed events of a llama-server log (any build; prefixes and timestamps on or "
        "off), then one summary row per task: prompt, reused prefix, new tokens, checkpoints, timings.",
    )
    parser.add_argument("path", metavar="PATH", help="llama-server log file (--log-file, or captured stderr)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line, each with a `kind`")
    parser.add_argument("--follow", "-f", action="store_true", help="keep reading as the log grows (Ctrl-C)")
    parser.add_argument("--no-raw", action="store_true", help="leave out lines the parser does not interpret")
    parser.add_argument("--summary-only", action="store_true", help="print only the per-task summary")
    parser.set_defaults(func=run_parse_log)


@functools.cache
def _raw_type() -> type[ev.Raw]:
    """The Raw event class, imported at first use: the events module is slow to import."""
    from tui.core.logs.events import Raw

    return Raw


def event_text(event: ev.LogEvent) -> str:
    """One human-readable line for an event."""
    where = ""
    if event.slot is not None:
        where += f"slot {event.slot} "
    if event.task is not None:
        where += f"task {event.task}"
    ts = "" if event.ts is None else f"{event.ts:.6f}"
    if isinstance(event, _raw_type()):
        detail = event.message
    else:
        data = event.to_json(include_line=False)
        detail = " ".join(f"{k}={_fmt(v)}" for k, v in data.items() if k not in _COMMON and v is not None)
    return f"{ts:>14} {event.level or '-'} {where:<16} {event.kind:<20} {detail}".rstrip()


def dumps(data: dict[str, Any]) -> str:
    """One JSON line; falls back to the stdlib for values orjson refuses (huge ints from garbled logs)."""
    import orjson

    try:
        return orjson.dumps(data).decode()
    except TypeError:
        return json.dumps(data, default=str)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str) and (" " in value or not value):
        return repr(value)
    return str(value)


SUMMARY_HEADER = (
    f"{'slot':>4} {'task':>6} {'ctx':>7} {'prompt':>7} {'reused':>7} {'new':>7} {'gen':>6} {'fill':>5} "
    f"{'ckpt c/r/e':>10} {'pp t/s':>8} {'tg t/s':>7} {'total ms':>9}  status"
)


def summary_row(r: RequestTimeline) -> str:
    """One row of the per-task table."""

    def n(v: int | float | None, spec: str = ",") -> str:
        return "-" if v is None else format(v, spec)

    status = "error" if r.error else "cancelled" if r.cancelled else "done" if r.done else "running"
    if r.truncated:
        status += " truncated"
    if r.full_reprocess:
        status += " full-reprocess"
    if r.context_shifts:
        status += f" shifts={r.context_shifts}"
    if r.error:
        status += f": {r.error[:80]}"
    ckpt = f"{r.checkpoints_created}/{r.checkpoints_restored}/{r.checkpoints_erased}"
    return (
        f"{n(r.slot, 'd'):>4} {n(r.task, 'd'):>6} {n(r.n_ctx_slot or r.error_n_ctx):>7} "
        f"{n(r.prompt_tokens or r.error_n_prompt_tokens):>7} "
        f"{n(r.reused_tokens):>7} {n(r.new_tokens):>7} {n(r.generated_tokens):>6} "
        f"{'-' if r.fill is None else f'{r.fill:.0%}':>5} {ckpt:>10} {n(r.prompt_per_s, ',.0f'):>8} "
        f"{n(r.eval_per_s, ',.1f'):>7} {n(r.total_ms, ',.1f'):>9}  {status}"
    )


class _Printer:
    """Prints events as they come and the task summary at the end."""

    def __init__(self, args: argparse.Namespace, out: TextIO) -> None:
        from tui.core.logs.monitor import LogMonitor

        self.json = bool(args.json)
        self.no_raw = bool(args.no_raw)
        self.summary_only = bool(args.summary_only)
        self.out = out
        # A router's log: each child's `[port]` lines are that model's own log (its tasks count from 0).
        self.monitor = LogMonitor(max_requests=100_000, max_events=1)

    def lines(self, lines: Iterable[str]) -> None:
        events = self.monitor.feed_lines(list(lines))
        if self.summary_only:
            return
        write = self.out.write
        for event in events:
            if self.no_raw and isinstance(event, _raw_type()):
                continue
            if self.json:
                write(dumps(event.to_json()) + "\n")
            else:
                write(event_text(event) + "\n")
        self.out.flush()

    def summary(self) -> None:
        monitor = self.monitor
        # Router mode: one table per model ("model" in each JSON task), after the router's own tasks.
        groups = [("", monitor)] + [
            (monitor.ports.models.get(port) or f"port {port}", child)
            for port, child in monitor.children.items()
        ]
        tables = 0
        if not self.json and not self.summary_only:
            self.out.write("\n")
        for model, log in groups:
            requests = log.timeline.requests()
            if model and not requests:
                continue
            if self.json:
                for r in requests:
                    self.out.write(dumps({**r.to_json(), "model": model} if model else r.to_json()) + "\n")
                continue
            if not model and len(groups) > 1 and not requests:
                continue
            tables += 1
            self.out.write(("\n" if tables > 1 else "") + (f"{model}: " if model else ""))
            self.out.write(f"{len(requests)} task(s)\n")
            if requests:
                self.out.write(SUMMARY_HEADER + "\n")
                for r in requests:
                    self.out.write(summary_row(r) + "\n")
        self.out.flush()


def run_parse_log(args: argparse.Namespace, settings: Settings) -> int:
    """Handler for `ctxbudget parse-log`."""
    import asyncio

    from tui.core.logs.tail import read_lines

    path = Path(args.path).expanduser()
    if not path.exists():
        print(f"ctxbudget parse-log: no such file: {path}", file=sys.stderr)
        return 1
    if not path.is_file():
        print(f"ctxbudget parse-log: not a regular file: {path}", file=sys.stderr)
        return 1
    printer = _Printer(args, sys.stdout)
    try:
        if args.follow:
            try:
                asyncio.run(_follow(path, printer))
            except KeyboardInterrupt:
                pass
        else:
            try:
                batch: list[str] = []
                for line in read_lines(path):
                    batch.append(line)
                    if len(batch) >= 10_000:
                        printer.lines(batch)
                        batch = []
                printer.lines(batch)
            except BrokenPipeError:
                raise
            except OSError as exc:
                print(f"ctxbudget parse-log: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
                return 1
        printer.summary()
    except BrokenPipeError:  # `parse-log … | head` closed the pipe: not an error
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


async def _follow(path: Path, printer: _Printer) -> None:
    from tui.core.logs.tail import LogTailer

    tailer = LogTailer(path, from_start=True)
    async for batch in tailer.batches():
        printer.lines(batch)
