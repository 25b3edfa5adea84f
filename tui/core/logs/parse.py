"""Turn llama-server log lines (any build, prefix/timestamps on or off) into typed events; never raises."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from tui.core.logs import events as ev
from tui.core.logs import parse_request as req
from tui.core.logs import parse_startup as startup

# One regex splits every line into prefix, component/function, slot/task and message.
_LINE_RE = re.compile(
    r"(?:(\d+)\.(\d\d)\.(\d{3})\.(\d{3}) )?(?:([IWEDT]) )?"
    r"(?:(slot|srv|que|res|cmn|spec) +([^\s:]+): (?:id +(-?\d+) \| task (-?\d+) \|(?: |$))? *(?=([^ ]*))"
    r"|([A-Za-z_][A-Za-z0-9_]*): )?",
)
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_LINE_ENDS = ("\n", "\r")
_LEVELS = {"info": "I", "warn": "W", "error": "E", "debug": "D", "cont": None, "none": None}

Handler = Callable[[str, tuple[Any, ...]], "ev.LogEvent | None"]


def strip_ansi(line: str) -> str:
    """Remove ANSI escape sequences (colors) from a line."""
    return _ANSI_RE.sub("", line) if "\x1b" in line else line


class LogParser:
    """Parses lines one at a time; keeps the little state needed to attach bare timing lines to a task."""

    def __init__(self) -> None:
        self._timing_owner: tuple[int | None, int | None] = (None, None)
        self._by_word: dict[str, Handler] = {
            "selected": req.selected,
            "processing": req.processing,
            "new": req.new,
            "cached": req.cached,
            "n_tokens": req.cached,
            "n_past": req.cached,
            "kv": req.cached,
            "created": req.created,
            "restored": req.restored,
            "erased": req.erased,
            "erasing": req.erased,
            "superseding": req.erased,
            "forcing": req.forcing,
            "prompt": req.prompt,
            "eval": req.timing,
            "total": req.timing,
            "draft": req.draft,
            "graphs": req.graphs,
            "n_gen": req.n_gen,
            "stop": req.stop,
            "slot": req.slot_shift,
            "cancel": req.cancel,
            "done": req.done,
            "request:": req.done,
            "task": req.task_error,
            "all": req.all_idle,
            "entering": req.sleep,
            "exiting": req.sleep,
            "server": req.server,
            "purging": req.purging,
            "loading": startup.loading,
            "initializing,": startup.initializing,
            "initializing": startup.initializing,
            "model": startup.model_loaded,
            "listening": startup.listening,
            "failed": startup.failed,
            "the": startup.capping,
            "operator():": startup.cleanup,
            "cleaning": startup.cleanup,
            "common_params_print_info:": startup.build,
            "build": startup.build,
        }
        self._by_func: dict[str, Handler] = {
            "print_info": startup.print_info,
            "llm_load_print_meta": startup.print_info,
            "llama_context": startup.llama_context,
            "llama_new_context_with_model": startup.llama_context,
            "llama_init_from_model": startup.llama_context,
            "load_tensors": startup.buffer,
            "llm_load_tensors": startup.buffer,
            "llama_kv_cache": startup.kv_cache,
            "llama_kv_cache_init": startup.kv_cache,
            "llama_kv_cache_unified": startup.kv_cache,
            "llama_memory_recurrent": startup.kv_cache,
            "sched_reserve": startup.buffer,
            "graph_reserve": startup.buffer,
            "resolve_fused_ops": startup.fused_ops,
            "build": startup.build_func,
            "main": startup.main,
        }

    # --- entry points ---------------------------------------------------------------------------

    def parse_lines(self, lines: Iterable[str | bytes]) -> list[ev.LogEvent]:
        """Parse many lines in order."""
        out: list[ev.LogEvent] = []
        append = out.append
        parse, parse_line = self._parse, self.parse_line
        for line in lines:
            # fast path for the common clean line; anything unusual goes through parse_line's full care
            if type(line) is str and "\x1b" not in line and line[-1:] not in _LINE_ENDS and line[:2] != '{"':
                try:
                    append(parse(line, line, None, None))
                    continue
                except Exception:  # the contract is "never raises": fall back to the careful path
                    pass
            append(parse_line(line))
        return out

    def parse_line(self, line: str | bytes) -> ev.LogEvent:
        """Parse one line (without or with its newline) into an event; unknown lines become Raw."""
        try:
            if type(line) is not str:
                line = line.decode("utf-8", "replace") if isinstance(line, bytes | bytearray) else str(line)
            if line[-1:] in ("\n", "\r"):
                line = line.rstrip("\r\n")
            if "\x1b" in line:
                line = _ANSI_RE.sub("", line)
            if line.startswith('{"'):
                return self._parse_jsonl(line)
            return self._parse(line, line, None, None)
        except Exception:  # the contract is "never raises": the line survives as Raw
            text = line if isinstance(line, str) else repr(line)
            return ev.Raw(None, None, None, None, text, None, None, text)

    # --- internals --------------------------------------------------------------------------------

    def _parse_jsonl(self, line: str) -> ev.LogEvent:
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return self._parse(line, line, None, None)
        if not isinstance(obj, dict) or obj.get("type") != "log" or not isinstance(obj.get("msg"), str):
            return ev.Raw(None, None, None, None, line, None, None, line)
        msg = obj["msg"].strip("\n").split("\n", 1)[0]
        t = obj.get("time")
        ts = t / 1e6 if isinstance(t, int | float) and not isinstance(t, bool) else None
        level = _LEVELS.get(str(obj.get("level")), None)
        return self._parse(line, msg, ts, level)

    def _parse(self, line: str, text: str, ts: float | None, level: str | None) -> ev.LogEvent:
        m = _LINE_RE.match(text)
        if m is None:  # cannot happen (everything in the pattern is optional); keeps mypy and readers calm
            return ev.Raw(ts, level, None, None, line, None, None, text)
        g = m.groups()
        msg = text[m.end() :]
        minutes = g[0]
        if minutes is not None:
            micros = int(g[1] + g[2] + g[3])
            ts = (micros if minutes == "0" else micros + int(minutes) * 60_000_000) / 1e6
        if g[4] is not None:
            level = g[4]
        comp = g[5]
        if comp is not None:
            func = g[6]
            slot = task = None
            if g[7] is not None:
                slot = int(g[7])
                task = int(g[8])
                if task < 0:
                    task = None
                if func == "print_timing":
                    self._timing_owner = (slot, task)
            handler = self._by_word.get(g[9])
            if handler is not None:
                event = handler(msg, (ts, level, slot, task, line, comp, func))
                if event is not None:
                    return event
            if level == "E":
                return req.error(msg, (ts, level, slot, task, line))
            return ev.Raw(ts, level, slot, task, line, comp, func, msg)
        func = g[10]
        if func is not None:
            handler = self._by_func.get(func)
            if handler is not None:
                event = handler(msg, (ts, level, None, None, line, None, func))
                if event is not None:
                    return event
        else:
            event = self._bare(msg, ts, level, line)
            if event is not None:
                return event
        if level == "E" or (level is None and ("error:" in msg or msg.startswith("error"))):
            return req.error(msg, (ts, level, None, None, line))
        return ev.Raw(ts, level, None, None, line, None, func, msg)

    def _bare(self, msg: str, ts: float | None, level: str | None, line: str) -> ev.LogEvent | None:
        # An older build's timing block continuation belongs to the last timing header line.
        stripped = msg.lstrip()
        if stripped.startswith(("prompt eval time", "eval time", "total time")):
            owner = self._timing_owner
            return req.timing(msg, (ts, level, owner[0], owner[1], line, None, None))
        if stripped.startswith("build"):
            return startup.build(stripped, (ts, level, None, None, line, None, None))
        return None


def parse_lines(lines: Iterable[str | bytes]) -> list[ev.LogEvent]:
    """Parse a sequence of lines with a fresh parser."""
    return LogParser().parse_lines(lines)


def parse_text(text: str | bytes) -> list[ev.LogEvent]:
    """Parse a whole log text (split on newlines)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return LogParser().parse_lines(text.splitlines())
