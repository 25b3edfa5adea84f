"""Turn llama-server log lines (any build, prefix/timestamps on or off) into typed events; never raises."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from tui.core.logs import events as ev

# One regex splits every line into prefix, component/function, slot/task and message.
_LINE_RE = re.compile(
    r"(?:(\d+)\.(\d\d)\.(\d{3})\.(\d{3}) )?(?:([IWEDT]) )?"
    r"(?:(slot|srv|que|res|cmn|spec) +([^\s:]+): (?:id +(-?\d+) \| task (-?\d+) \|(?: |$))?"
    r"|([A-Za-z_][A-Za-z0-9_]*): )?",
)
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_KV_RE = re.compile(r"([A-Za-z_][\w.]*(?:\(\))?) *= *(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|inf|nan)")
_TIMING_RE = re.compile(
    r"\s*(prompt eval|eval|total) time = *([-\d.]+|inf|nan) ms / *(\d+) (?:tokens|runs)"
    r"(?: *\( *([-\d.]+|inf|nan) ms per token, *([-\d.]+|inf|nan) tokens per second\))?"
)
_SIM_RE = re.compile(r"(?:f_)?sim(?:_best)? = *([\d.]+) \(> *([\d.]+) thold\)")
_TASK_ERROR_RE = re.compile(r"task id = (\d+), error: (.*)", re.S)
_EXCEED_RE = re.compile(r"\((\d+) tokens\) exceeds the available context size \((\d+) tokens\)")
_DONE_RE = re.compile(r"(?:done )?request: (\S+) (\S+) (\S+) (\d{3})")
_PURGE_RE = re.compile(r"purging slot (\d+) with (\d+) tokens")
_CAP_RE = re.compile(r"the slot context \((\d+)\) exceeds the training context of the model \((\d+)\)")
_LLAMA_CAP_RE = re.compile(r"n_ctx\w* \((\d+)\) > n_ctx_train \((\d+)\)")
_BUILD_RE = re.compile(r"build(?::| =|) *(\d+) \(([^)]*)\)(.*)", re.S)
_QUOTED_RE = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_BUF_RE = re.compile(r"\s*(\S+)\s+(?:(model|KV|compute|RS|output)\s+)?buffer size\s*=\s*([\d.]+) MiB")
_KVSIZE_RE = re.compile(
    r"size = *([\d.]+) MiB \( *(\d+) cells, *(\d+) layers, *(\d+)(?:/(\d+))? seqs\)"
    r"(?:, K \((\w+)\): *([\d.]+) MiB, V \((\w+)\): *([\d.]+) MiB)?"
)
_PARAM_RE = re.compile(r"([A-Za-z_][\w ]*?) *= *(.*)")
_URL_RE = re.compile(r"(https?://\S+)")

# Exact shapes of the hot per-request messages (this tree and early-2026 builds); _kv is the loose fallback.
_RELEASE_RE = re.compile(r"stop processing: n_tokens = (\d+), truncated = (\d+)")
_PROGRESS_NEW_RE = re.compile(
    r"prompt processing, n_tokens = *(\d+), progress = *([\d.]+), t = *([\d.]+) s / *([\d.]+|inf|nan) tokens"
)
_PROGRESS_OLD_RE = re.compile(
    r"prompt processing progress, n_tokens = (\d+), batch\.n_tokens = (\d+), progress = ([\d.]+)"
)
_NEW_PROMPT_RE = re.compile(r"new prompt, n_ctx_slot = (\d+), n_keep = (-?\d+), [\w.()]+ = (\d+)")
_CACHED_RE = re.compile(r"(?:cached n_tokens|n_tokens|n_past) = (\d+), memory_seq_rm \[(\d+), end\)")
_CREATED_RE = re.compile(
    r"created context checkpoint (\d+) of (\d+) \(pos_min = (-?\d+), pos_max = (-?\d+), "
    r"n_tokens = (\d+), size = ([\d.]+) MiB\)"
)
_LCP_RE = re.compile(
    r"selected slot by LCP similarity, f?_?sim_best = ([\d.]+) \(> ([\d.]+) thold\), f_keep = ([\d.]+)"
)
_N_GEN_RE = re.compile(r"n_gen = *(\d+), tg = *([\d.]+|inf|nan) t/s, tg_3s = *([\d.]+|inf|nan) t/s")

_LINE_ENDS = ("\n", "\r")
_LEVELS = {"info": "I", "warn": "W", "error": "E", "debug": "D", "cont": None, "none": None}
_BUFFER_KIND = {"model": "model", "KV": "kv", "compute": "compute", "RS": "rs", "output": "output"}
_CHECKPOINT_ERASE_REASON = {"erased": "invalidated", "superseding": "superseded"}

Handler = Callable[[str, tuple[Any, ...]], "ev.LogEvent | None"]


def _num(text: str) -> float:
    return float(text)


def _kv(msg: str) -> dict[str, str]:
    return dict(_KV_RE.findall(msg))


def _int_or_none(d: dict[str, str], key: str) -> int | None:
    v = d.get(key)
    return int(float(v)) if v is not None else None


def _float_or_none(d: dict[str, str], key: str) -> float | None:
    v = d.get(key)
    return float(v) if v is not None else None


def _int_value(text: str) -> int | None:
    text = text.strip()
    if text.isdigit():
        return int(text)
    return None


def strip_ansi(line: str) -> str:
    """Remove ANSI escape sequences (colors) from a line."""
    return _ANSI_RE.sub("", line) if "\x1b" in line else line


class LogParser:
    """Parses lines one at a time; keeps the little state needed to attach bare timing lines to a task."""

    def __init__(self) -> None:
        self._timing_owner: tuple[int | None, int | None] = (None, None)
        self._by_word: dict[str, Handler] = {
            "selected": self._selected,
            "processing": self._processing,
            "new": self._new,
            "cached": self._cached,
            "n_tokens": self._cached,
            "n_past": self._cached,
            "kv": self._cached,
            "created": self._created,
            "restored": self._restored,
            "erased": self._erased,
            "erasing": self._erased,
            "superseding": self._erased,
            "forcing": self._forcing,
            "prompt": self._prompt,
            "eval": self._timing,
            "total": self._timing,
            "graphs": self._graphs,
            "n_gen": self._n_gen,
            "stop": self._stop,
            "slot": self._slot_shift,
            "cancel": self._cancel,
            "done": self._done,
            "request:": self._done,
            "task": self._task_error,
            "all": self._all_idle,
            "entering": self._sleep,
            "exiting": self._sleep,
            "server": self._server,
            "purging": self._purging,
            "loading": self._loading,
            "initializing,": self._initializing,
            "initializing": self._initializing,
            "model": self._model_loaded,
            "listening": self._listening,
            "failed": self._failed,
            "the": self._the,
            "operator():": self._cleanup,
            "cleaning": self._cleanup,
            "common_params_print_info:": self._build,
            "build": self._build,
        }
        self._by_func: dict[str, Handler] = {
            "print_info": self._print_info,
            "llm_load_print_meta": self._print_info,
            "llama_context": self._llama_context,
            "llama_new_context_with_model": self._llama_context,
            "llama_init_from_model": self._llama_context,
            "load_tensors": self._buffer,
            "llm_load_tensors": self._buffer,
            "llama_kv_cache": self._kv_cache,
            "llama_kv_cache_init": self._kv_cache,
            "llama_kv_cache_unified": self._kv_cache,
            "llama_memory_recurrent": self._kv_cache,
            "sched_reserve": self._buffer,
            "graph_reserve": self._buffer,
            "resolve_fused_ops": self._fused_ops,
            "build": self._build_func,
            "main": self._main,
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
        if g[0] is not None:
            ts = (int(g[0]) * 60_000_000 + int(g[1] + g[2] + g[3])) / 1e6
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
            if msg[:1] == " ":
                msg = msg.lstrip()
            space = msg.find(" ")
            handler = self._by_word.get(msg if space < 0 else msg[:space])
            if handler is not None:
                event = handler(msg, (ts, level, slot, task, line, comp, func))
                if event is not None:
                    return event
            if level == "E":
                return self._error(msg, (ts, level, slot, task, line))
            return ev.Raw(ts, level, slot, task, line, comp, func, msg)
        func = g[9]
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
            return self._error(msg, (ts, level, None, None, line))
        return ev.Raw(ts, level, None, None, line, None, func, msg)

    def _bare(self, msg: str, ts: float | None, level: str | None, line: str) -> ev.LogEvent | None:
        # An older build's timing block continuation belongs to the last timing header line.
        stripped = msg.lstrip()
        if stripped.startswith(("prompt eval time", "eval time", "total time")):
            owner = self._timing_owner
            return self._timing(msg, (ts, level, owner[0], owner[1], line, None, None))
        if stripped.startswith("build"):
            return self._build(stripped, (ts, level, None, None, line, None, None))
        return None

    # --- slot / request handlers ------------------------------------------------------------------

    @staticmethod
    def _selected(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("selected slot by "):
            return None
        m = _LCP_RE.match(msg)
        if m is not None:
            return ev.SlotSelected(
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                "lcp",
                float(m.group(1)),
                float(m.group(2)),
                float(m.group(3)),
                None,
            )
        rest = msg[17:]
        if rest.startswith("LCP"):
            m = _SIM_RE.search(rest)
            d = _kv(rest)
            return ev.SlotSelected(
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                "lcp",
                float(m.group(1)) if m else None,
                float(m.group(2)) if m else None,
                _float_or_none(d, "f_keep"),
                None,
            )
        if rest.startswith("LRU"):
            d = _kv(rest)
            return ev.SlotSelected(
                c[0], c[1], c[2], c[3], c[4], "lru", None, None, None, _int_or_none(d, "t_last")
            )
        reason = rest.split(" ", 1)[0].split(",", 1)[0].lower() or "unknown"
        return ev.SlotSelected(c[0], c[1], c[2], c[3], c[4], reason, None, None, None, None)

    @staticmethod
    def _processing(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("processing task"):
            return None
        d = _kv(msg)
        child = d.get("is_child")
        return ev.TaskLaunched(c[0], c[1], c[2], c[3], c[4], bool(int(child)) if child is not None else None)

    @staticmethod
    def _new(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if msg.startswith("new prompt"):
            m = _NEW_PROMPT_RE.match(msg)
            if m is not None:
                return ev.NewPrompt(
                    c[0], c[1], c[2], c[3], c[4], int(m.group(1)), int(m.group(2)), int(m.group(3))
                )
            d = _kv(msg)
            n_tokens = d.get("task.n_tokens") or d.get("n_prompt_tokens") or d.get("task.n_tokens()")
            if "n_ctx_slot" not in d or n_tokens is None:
                return None
            return ev.NewPrompt(
                c[0], c[1], c[2], c[3], c[4], int(d["n_ctx_slot"]), _int_or_none(d, "n_keep"), int(n_tokens)
            )
        if msg.startswith("new slot"):
            d = _kv(msg)
            n_ctx = d.get("n_ctx_slot") or d.get("n_ctx")
            if n_ctx is None:
                return None
            return ev.SlotInit(c[0], c[1], c[2], c[3], c[4], int(n_ctx))
        return None

    @staticmethod
    def _cached(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        m = _CACHED_RE.match(msg)
        if m is not None:
            return ev.CachedPrefix(c[0], c[1], c[2], c[3], c[4], int(m.group(1)), int(m.group(2)))
        rm = msg.find("[")
        if rm < 0 or not ("memory_seq_rm" in msg or "kv cache rm" in msg):
            return None
        end = msg.find(",", rm)
        seq_rm_from = int(msg[rm + 1 : end]) if end > rm else None
        d = _kv(msg[:rm])
        n = d.get("cached n_tokens") or d.get("n_tokens") or d.get("n_past")
        if n is None:
            if seq_rm_from is None:
                return None
            n_cached = seq_rm_from
        else:
            n_cached = int(n)
        return ev.CachedPrefix(c[0], c[1], c[2], c[3], c[4], n_cached, seq_rm_from)

    @staticmethod
    def _created(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("created context checkpoint"):
            return None
        m = _CREATED_RE.match(msg)
        if m is not None:
            g = m.groups()
            return ev.CheckpointCreated(
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                int(g[0]),
                int(g[1]),
                int(g[2]),
                int(g[3]),
                int(g[4]),
                float(g[5]),
            )
        head = msg[27:].split(" ", 3)
        d = _kv(msg)
        if len(head) < 3 or head[1] != "of":
            return None
        return ev.CheckpointCreated(
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            int(head[0]),
            int(head[2]),
            int(d["pos_min"]),
            int(d["pos_max"]),
            _int_or_none(d, "n_tokens"),
            float(d["size"]),
        )

    @staticmethod
    def _restored(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("restored context checkpoint"):
            return None
        d = _kv(msg)
        return ev.CheckpointRestored(
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            int(d["pos_min"]),
            int(d["pos_max"]),
            _int_or_none(d, "n_tokens"),
            _int_or_none(d, "n_past"),
            _float_or_none(d, "size"),
        )

    @staticmethod
    def _erased(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if "checkpoint" not in msg:
            return None
        if msg.startswith("erased"):
            reason = "invalidated"
        elif msg.startswith("erasing old"):
            reason = "old"
        elif msg.startswith("erasing"):
            reason = "too_close"
        elif msg.startswith("superseding"):
            reason = "superseded"
        else:
            return None
        d = _kv(msg)
        return ev.CheckpointErased(
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            reason,
            _int_or_none(d, "pos_min"),
            _int_or_none(d, "pos_max"),
            _int_or_none(d, "n_tokens"),
            _float_or_none(d, "size"),
            _int_or_none(d, "n_swa"),
            _int_or_none(d, "pos_next"),
        )

    @staticmethod
    def _forcing(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("forcing full prompt re-processing"):
            return None
        reason = msg[34:].strip()
        if reason.startswith("due to "):
            reason = reason[7:]
        return ev.FullReprocess(c[0], c[1], c[2], c[3], c[4], reason)

    def _prompt(self, msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if msg.startswith("prompt eval time"):
            return self._timing(msg, c)
        if msg.startswith("prompt processing"):
            m = _PROGRESS_NEW_RE.match(msg)
            if m is not None:
                g = m.groups()
                return ev.PromptProgress(
                    c[0], c[1], c[2], c[3], c[4], int(g[0]), None, float(g[1]), float(g[2]), float(g[3])
                )
            m = _PROGRESS_OLD_RE.match(msg)
            if m is not None:
                g = m.groups()
                return ev.PromptProgress(
                    c[0], c[1], c[2], c[3], c[4], int(g[0]), int(g[1]), float(g[2]), None, None
                )
            d = _kv(msg)
            if "done" in msg[18:23]:
                return ev.PromptDone(
                    c[0], c[1], c[2], c[3], c[4], int(d["n_tokens"]), _int_or_none(d, "batch.n_tokens")
                )
            if "progress" not in d:
                return None
            elapsed = tps = None
            tpos = msg.find(" t = ")
            if tpos >= 0:
                parts = msg[tpos + 5 :].split()
                # "t =   3.05 s / 2685.90 tokens per second"
                if len(parts) >= 4 and parts[1] == "s" and parts[2] == "/":
                    elapsed = float(parts[0])
                    tps = float(parts[3])
            return ev.PromptProgress(
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                int(d["n_tokens"]),
                _int_or_none(d, "batch.n_tokens"),
                float(d["progress"]),
                elapsed,
                tps,
            )
        return None

    @staticmethod
    def _timing(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        m = _TIMING_RE.match(msg)
        if m is None:
            return None
        phase, ms, tokens, per_tok, tps = m.groups()
        return ev.Timing(
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            "prompt" if phase == "prompt eval" else phase,
            float(ms),
            int(tokens),
            float(per_tok) if per_tok else None,
            float(tps) if tps else None,
        )

    @staticmethod
    def _graphs(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("graphs reused"):
            return None
        return ev.GraphsReused(c[0], c[1], c[2], c[3], c[4], int(msg.rsplit("=", 1)[1]))

    @staticmethod
    def _n_gen(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        m = _N_GEN_RE.match(msg)
        if m is not None:
            return ev.GenProgress(
                c[0], c[1], c[2], c[3], c[4], int(m.group(1)), float(m.group(2)), float(m.group(3))
            )
        d = _kv(msg)
        if "n_gen" not in d:
            return None
        return ev.GenProgress(
            c[0], c[1], c[2], c[3], c[4], int(d["n_gen"]), _float_or_none(d, "tg"), _float_or_none(d, "tg_3s")
        )

    @staticmethod
    def _stop(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        m = _RELEASE_RE.match(msg)
        if m is not None:
            return ev.SlotReleased(c[0], c[1], c[2], c[3], c[4], int(m.group(1)), m.group(2) != "0")
        if not msg.startswith("stop processing"):
            return None
        d = _kv(msg)
        return ev.SlotReleased(
            c[0], c[1], c[2], c[3], c[4], int(d["n_tokens"]), d.get("truncated", "0") not in ("0", "0.0")
        )

    @staticmethod
    def _slot_shift(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("slot context shift"):
            return None
        d = _kv(msg)
        return ev.ContextShift(
            c[0], c[1], c[2], c[3], c[4], int(d["n_keep"]), int(d["n_left"]), int(d["n_discard"])
        )

    @staticmethod
    def _cancel(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("cancel task"):
            return None
        d = _kv(msg)
        task = _int_or_none(d, "id_task")
        return ev.TaskCancelled(c[0], c[1], c[2], task if task is not None else c[3], c[4])

    @staticmethod
    def _done(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        m = _DONE_RE.match(msg)
        if m is None:
            return None
        return ev.RequestDone(
            c[0], c[1], c[2], c[3], c[4], m.group(1), m.group(2), m.group(3), int(m.group(4))
        )

    def _task_error(self, msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        m = _TASK_ERROR_RE.match(msg)
        if m is None:
            return None
        return self._error(m.group(2), (c[0], c[1], c[2], int(m.group(1)), c[4]))

    @staticmethod
    def _error(msg: str, c: tuple[Any, ...]) -> ev.LogEvent:
        m = _EXCEED_RE.search(msg)
        n_prompt = n_ctx = None
        if m is not None:
            n_prompt, n_ctx = int(m.group(1)), int(m.group(2))
        elif "exceeds the available context size" in msg:
            d = _kv(msg)
            n_prompt, n_ctx = _int_or_none(d, "n_prompt_tokens"), _int_or_none(d, "n_ctx")
        return ev.ServerError(c[0], c[1], c[2], c[3], c[4], msg.strip(), n_prompt, n_ctx)

    @staticmethod
    def _all_idle(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("all slots are idle"):
            return None
        return ev.AllSlotsIdle(c[0], c[1], c[2], c[3], c[4])

    @staticmethod
    def _sleep(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if msg.endswith("entering sleeping state"):
            return ev.SleepState(c[0], c[1], c[2], c[3], c[4], True)
        if msg.endswith("exiting sleeping state"):
            return ev.SleepState(c[0], c[1], c[2], c[3], c[4], False)
        return None

    def _server(self, msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if "sleeping state" in msg:
            return self._sleep(msg, c)
        if msg.startswith("server is listening"):
            return self._listening(msg, c)
        return None

    @staticmethod
    def _purging(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        m = _PURGE_RE.match(msg)
        if m is None:
            return None
        return ev.SlotPurged(c[0], c[1], int(m.group(1)), c[3], c[4], int(m.group(2)))

    # --- startup handlers ---------------------------------------------------------------------------

    @staticmethod
    def _quoted(msg: str) -> str | None:
        m = _QUOTED_RE.search(msg)
        if m is None:
            return None
        return m.group(1) if m.group(1) is not None else m.group(2)

    def _loading(self, msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("loading model"):
            return None
        model = self._quoted(msg)
        if model is None:
            model = msg[13:].strip(" :")
        if not model:
            return None
        return ev.ModelLoading(c[0], c[1], c[2], c[3], c[4], model)

    def _failed(self, msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("failed to load model"):
            return None
        model = self._quoted(msg)
        return ev.ModelLoadFailed(c[0], c[1], c[2], c[3], c[4], model if model is not None else "")

    @staticmethod
    def _initializing(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        d = _kv(msg)
        if "n_slots" not in d:
            return None
        unified: bool | None = None
        pos = msg.find("kv_unified")
        if pos >= 0:
            value = msg[pos + 10 :].strip(" =:'\"").lower()
            unified = value.startswith(("true", "1", "yes"))
        return ev.ServerInit(
            c[0], c[1], c[2], c[3], c[4], int(d["n_slots"]), _int_or_none(d, "n_ctx_slot"), unified
        )

    @staticmethod
    def _model_loaded(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if msg.startswith("model loaded"):
            return ev.ModelLoaded(c[0], c[1], c[2], c[3], c[4])
        return None

    @staticmethod
    def _listening(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        m = _URL_RE.search(msg)
        if m is None or "listening" not in msg:
            return None
        return ev.Listening(c[0], c[1], c[2], c[3], c[4], m.group(1))

    @staticmethod
    def _the(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        m = _CAP_RE.match(msg)
        if m is None:
            return None
        return ev.TrainContextCapped(c[0], c[1], c[2], c[3], c[4], int(m.group(1)), int(m.group(2)), "server")

    @staticmethod
    def _cleanup(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if "cleaning up before exit" in msg:
            return ev.ServerStopping(c[0], c[1], c[2], c[3], c[4])
        return None

    @staticmethod
    def _build(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        pos = msg.find("build")
        if pos < 0 or pos > 30:
            return None
        m = _BUILD_RE.match(msg, pos)
        if m is None:
            return None
        return ev.BuildInfo(
            c[0], c[1], c[2], c[3], c[4], int(m.group(1)), m.group(2) or None, msg[pos:].strip()
        )

    def _build_func(self, msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        return self._build("build: " + msg, c)

    def _main(self, msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if msg.startswith("model loaded"):
            return ev.ModelLoaded(c[0], c[1], c[2], c[3], c[4])
        if msg.startswith("build"):
            return self._build(msg, c)
        if "listening" in msg:
            return self._listening(msg, c)
        if msg.startswith("loading model"):
            return self._loading(msg, c)
        return None

    # --- libllama handlers ---------------------------------------------------------------------------

    @staticmethod
    def _param(msg: str) -> tuple[str, int | None, str] | None:
        m = _PARAM_RE.match(msg)
        if m is None:
            return None
        text = m.group(2).strip()
        return m.group(1).strip(), _int_value(text), text

    def _print_info(self, msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        p = self._param(msg)
        if p is None:
            return None
        return ev.ModelInfo(c[0], c[1], c[2], c[3], c[4], p[0], p[1], p[2])

    def _llama_context(self, msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if "buffer size" in msg:
            return self._buffer(msg, c)
        m = _LLAMA_CAP_RE.match(msg)
        if m is not None:
            return ev.TrainContextCapped(
                c[0], c[1], c[2], c[3], c[4], int(m.group(1)), int(m.group(2)), "llama"
            )
        if "(" in msg.split("=", 1)[0]:
            return None
        p = self._param(msg)
        if p is None or " " in p[0]:
            return None
        return ev.ContextParam(c[0], c[1], c[2], c[3], c[4], p[0], p[1], p[2])

    @staticmethod
    def _buffer(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        m = _BUF_RE.match(msg)
        if m is None:
            return None
        word = m.group(2)
        if word is not None:
            kind = _BUFFER_KIND[word]
        elif c[6] in ("load_tensors", "llm_load_tensors"):
            kind = "model"
        else:
            kind = "compute" if c[6] in ("sched_reserve", "graph_reserve") else "other"
        return ev.BufferSize(c[0], c[1], c[2], c[3], c[4], kind, m.group(1), float(m.group(3)))

    def _kv_cache(self, msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if "buffer size" in msg:
            return self._buffer(msg, c)
        m = _KVSIZE_RE.search(msg)
        if m is None:
            return None
        g = m.groups()
        return ev.KvCacheSize(
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            float(g[0]),
            int(g[1]),
            int(g[2]),
            int(g[3]),
            int(g[4]) if g[4] else None,
            g[5],
            float(g[6]) if g[6] else None,
            g[7],
            float(g[8]) if g[8] else None,
        )

    @staticmethod
    def _fused_ops(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
        if not msg.startswith("Flash Attention"):
            return None
        enabled = msg.endswith("enabled") and "not supported" not in msg
        return ev.FlashAttention(c[0], c[1], c[2], c[3], c[4], enabled)


def parse_lines(lines: Iterable[str | bytes]) -> list[ev.LogEvent]:
    """Parse a sequence of lines with a fresh parser."""
    return LogParser().parse_lines(lines)


def parse_text(text: str | bytes) -> list[ev.LogEvent]:
    """Parse a whole log text (split on newlines)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return LogParser().parse_lines(text.splitlines())
