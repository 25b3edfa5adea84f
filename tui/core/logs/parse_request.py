"""Handlers for per-request log messages (slot selection … release); each returns an event or None.

A handler gets the message (after the line prefix) and ``c`` = (ts, level, slot, task, line, component,
function); None means "not this message after all" and the line falls back to Raw.
"""

from __future__ import annotations

import re
from typing import Any

from tui.core.logs import events as ev
from tui.core.logs.parse_fields import float_or_none, int_or_none, kv
from tui.core.logs.parse_startup import listening

_TIMING_RE = re.compile(
    r"\s*(prompt eval|eval|total) time = *([-\d.]+|inf|nan) ms / *(\d+) (?:tokens|runs)"
    r"(?: *\( *([-\d.]+|inf|nan) ms per token, *([-\d.]+|inf|nan) tokens per second\))?"
)
# "draft acceptance = 0.83333 (   45 accepted /    54 generated), mean len =  3.50" (b11434 print_timing)
_DRAFT_RE = re.compile(
    r"draft acceptance = *([-\d.]+|inf|nan) \( *(\d+) accepted / *(\d+) generated\)"
    r"(?:, mean len = *([-\d.]+|inf|nan))?"
)
_SIM_RE = re.compile(r"(?:f_)?sim(?:_best)? = *([\d.]+) \(> *([\d.]+) thold\)")
_TASK_ERROR_RE = re.compile(r"task id = (\d+), error: (.*)", re.S)
_EXCEED_RE = re.compile(r"\((\d+) tokens\) exceeds the available context size \((\d+) tokens\)")
_DONE_RE = re.compile(r"(?:done )?request: (\S+) (\S+) (\S+) (\d{3})")
_PURGE_RE = re.compile(r"purging slot (\d+) with (\d+) tokens")
# Exact shapes of the hot messages (this tree and early-2026 builds); kv() is the loose fallback.
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


def selected(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
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
        d = kv(rest)
        return ev.SlotSelected(
            c[0],
            c[1],
            c[2],
            c[3],
            c[4],
            "lcp",
            float(m.group(1)) if m else None,
            float(m.group(2)) if m else None,
            float_or_none(d, "f_keep"),
            None,
        )
    if rest.startswith("LRU"):
        d = kv(rest)
        return ev.SlotSelected(
            c[0], c[1], c[2], c[3], c[4], "lru", None, None, None, int_or_none(d, "t_last")
        )
    reason = rest.split(" ", 1)[0].split(",", 1)[0].lower() or "unknown"
    return ev.SlotSelected(c[0], c[1], c[2], c[3], c[4], reason, None, None, None, None)


def processing(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if not msg.startswith("processing task"):
        return None
    d = kv(msg)
    child = d.get("is_child")
    return ev.TaskLaunched(c[0], c[1], c[2], c[3], c[4], bool(int(child)) if child is not None else None)


def new(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if msg.startswith("new prompt"):
        m = _NEW_PROMPT_RE.match(msg)
        if m is not None:
            return ev.NewPrompt(
                c[0], c[1], c[2], c[3], c[4], int(m.group(1)), int(m.group(2)), int(m.group(3))
            )
        d = kv(msg)
        n_tokens = d.get("task.n_tokens") or d.get("n_prompt_tokens") or d.get("task.n_tokens()")
        if "n_ctx_slot" not in d or n_tokens is None:
            return None
        return ev.NewPrompt(
            c[0], c[1], c[2], c[3], c[4], int(d["n_ctx_slot"]), int_or_none(d, "n_keep"), int(n_tokens)
        )
    if msg.startswith("new slot"):
        d = kv(msg)
        n_ctx = d.get("n_ctx_slot") or d.get("n_ctx")
        if n_ctx is None:
            return None
        return ev.SlotInit(c[0], c[1], c[2], c[3], c[4], int(n_ctx))
    return None


def cached(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    m = _CACHED_RE.match(msg)
    if m is not None:
        return ev.CachedPrefix(c[0], c[1], c[2], c[3], c[4], int(m.group(1)), int(m.group(2)))
    rm = msg.find("[")
    if rm < 0 or not ("memory_seq_rm" in msg or "kv cache rm" in msg):
        return None
    end = msg.find(",", rm)
    seq_rm_from = int(msg[rm + 1 : end]) if end > rm else None
    d = kv(msg[:rm])
    n = d.get("cached n_tokens") or d.get("n_tokens") or d.get("n_past")
    if n is None:
        if seq_rm_from is None:
            return None
        n_cached = seq_rm_from
    else:
        n_cached = int(n)
    return ev.CachedPrefix(c[0], c[1], c[2], c[3], c[4], n_cached, seq_rm_from)


def created(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
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
    d = kv(msg)
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
        int_or_none(d, "n_tokens"),
        float(d["size"]),
    )


def restored(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if not msg.startswith("restored context checkpoint"):
        return None
    d = kv(msg)
    return ev.CheckpointRestored(
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        int(d["pos_min"]),
        int(d["pos_max"]),
        int_or_none(d, "n_tokens"),
        int_or_none(d, "n_past"),
        float_or_none(d, "size"),
    )


def erased(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
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
    d = kv(msg)
    return ev.CheckpointErased(
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        reason,
        int_or_none(d, "pos_min"),
        int_or_none(d, "pos_max"),
        int_or_none(d, "n_tokens"),
        float_or_none(d, "size"),
        int_or_none(d, "n_swa"),
        int_or_none(d, "pos_next"),
    )


def forcing(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if not msg.startswith("forcing full prompt re-processing"):
        return None
    reason = msg[34:].strip()
    if reason.startswith("due to "):
        reason = reason[7:]
    return ev.FullReprocess(c[0], c[1], c[2], c[3], c[4], reason)


def prompt(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if msg.startswith("prompt eval time"):
        return timing(msg, c)
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
        d = kv(msg)
        if "done" in msg[18:23]:
            return ev.PromptDone(
                c[0], c[1], c[2], c[3], c[4], int(d["n_tokens"]), int_or_none(d, "batch.n_tokens")
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
            int_or_none(d, "batch.n_tokens"),
            float(d["progress"]),
            elapsed,
            tps,
        )
    return None


def timing(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
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


def draft(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    m = _DRAFT_RE.match(msg)
    if m is None:
        return None
    rate, accepted, generated, mean_len = m.groups()
    return ev.DraftAcceptance(
        c[0], c[1], c[2], c[3], c[4], int(accepted), int(generated),
        float(rate), float(mean_len) if mean_len else None,
    )  # fmt: skip


def graphs(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if not msg.startswith("graphs reused"):
        return None
    return ev.GraphsReused(c[0], c[1], c[2], c[3], c[4], int(msg.rsplit("=", 1)[1]))


def n_gen(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    m = _N_GEN_RE.match(msg)
    if m is not None:
        return ev.GenProgress(
            c[0], c[1], c[2], c[3], c[4], int(m.group(1)), float(m.group(2)), float(m.group(3))
        )
    d = kv(msg)
    if "n_gen" not in d:
        return None
    return ev.GenProgress(
        c[0], c[1], c[2], c[3], c[4], int(d["n_gen"]), float_or_none(d, "tg"), float_or_none(d, "tg_3s")
    )


def stop(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    m = _RELEASE_RE.match(msg)
    if m is not None:
        return ev.SlotReleased(c[0], c[1], c[2], c[3], c[4], int(m.group(1)), m.group(2) != "0")
    if not msg.startswith("stop processing"):
        return None
    d = kv(msg)
    return ev.SlotReleased(
        c[0], c[1], c[2], c[3], c[4], int(d["n_tokens"]), d.get("truncated", "0") not in ("0", "0.0")
    )


def slot_shift(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if not msg.startswith("slot context shift"):
        return None
    d = kv(msg)
    return ev.ContextShift(
        c[0], c[1], c[2], c[3], c[4], int(d["n_keep"]), int(d["n_left"]), int(d["n_discard"])
    )


def cancel(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if not msg.startswith("cancel task"):
        return None
    d = kv(msg)
    task = int_or_none(d, "id_task")
    return ev.TaskCancelled(c[0], c[1], c[2], task if task is not None else c[3], c[4])


def done(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    m = _DONE_RE.match(msg)
    if m is None:
        return None
    return ev.RequestDone(c[0], c[1], c[2], c[3], c[4], m.group(1), m.group(2), m.group(3), int(m.group(4)))


def task_error(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    m = _TASK_ERROR_RE.match(msg)
    if m is None:
        return None
    return error(m.group(2), (c[0], c[1], c[2], int(m.group(1)), c[4]))


def error(msg: str, c: tuple[Any, ...]) -> ev.LogEvent:
    m = _EXCEED_RE.search(msg)
    n_prompt = n_ctx = None
    if m is not None:
        n_prompt, n_ctx = int(m.group(1)), int(m.group(2))
    elif "exceeds the available context size" in msg:
        d = kv(msg)
        n_prompt, n_ctx = int_or_none(d, "n_prompt_tokens"), int_or_none(d, "n_ctx")
    return ev.ServerError(c[0], c[1], c[2], c[3], c[4], msg.strip(), n_prompt, n_ctx)


def all_idle(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if not msg.startswith("all slots are idle"):
        return None
    return ev.AllSlotsIdle(c[0], c[1], c[2], c[3], c[4])


def sleep(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if msg.endswith("entering sleeping state"):
        return ev.SleepState(c[0], c[1], c[2], c[3], c[4], True)
    if msg.endswith("exiting sleeping state"):
        return ev.SleepState(c[0], c[1], c[2], c[3], c[4], False)
    return None


def server(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if "sleeping state" in msg:
        return sleep(msg, c)
    if msg.startswith("server is listening"):
        return listening(msg, c)
    return None


def purging(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    m = _PURGE_RE.match(msg)
    if m is None:
        return None
    return ev.SlotPurged(c[0], c[1], int(m.group(1)), c[3], c[4], int(m.group(2)))
