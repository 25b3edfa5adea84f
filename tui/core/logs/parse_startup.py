"""Handlers for startup and libllama log messages (model, slots, context sizes, buffers, build)."""

from __future__ import annotations

import re
from typing import Any

from tui.core.logs import events as ev
from tui.core.logs.parse_fields import int_or_none, int_value, kv

_CAP_RE = re.compile(r"the slot context \((\d+)\) exceeds the training context of the model \((\d+)\)")
_LLAMA_CAP_RE = re.compile(r"n_ctx\w* \((\d+)\) > n_ctx_train \((\d+)\)")
_BUILD_RE = re.compile(r"build(?::| =|) *(\d+) \(([^)]*)\)(.*)", re.S)
_QUOTED_RE = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_BUF_RE = re.compile(r"\s*(\S+)\s+(?:(model|KV|compute|RS|output)\s+)?buffer size\s*=\s*([\d.]+) MiB")
_KVSIZE_RE = re.compile(
    r"size = *([\d.]+) MiB \( *(\d+) cells, *(\d+) layers, *(\d+)(?:/(\d+))? seqs\)"
    r"(?:, K \((\w+)\): *([\d.]+) MiB, V \((\w+)\): *([\d.]+) MiB)?"
)
_PARAM_RE = re.compile(r"([A-Za-z_][\w .]*?) *= *(.*)")
_URL_RE = re.compile(r"(https?://\S+)")
_BUFFER_KIND = {"model": "model", "KV": "kv", "compute": "compute", "RS": "rs", "output": "output"}


def quoted(msg: str) -> str | None:
    m = _QUOTED_RE.search(msg)
    if m is None:
        return None
    return m.group(1) if m.group(1) is not None else m.group(2)


def loading(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if not msg.startswith("loading model"):
        return None
    model = quoted(msg)
    if model is None:
        model = msg[13:].strip(" :")
    if not model:
        return None
    return ev.ModelLoading(c[0], c[1], c[2], c[3], c[4], model)


def failed(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if not msg.startswith("failed to load model"):
        return None
    model = quoted(msg)
    return ev.ModelLoadFailed(c[0], c[1], c[2], c[3], c[4], model if model is not None else "")


def initializing(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    d = kv(msg)
    if "n_slots" not in d:
        return None
    unified: bool | None = None
    pos = msg.find("kv_unified")
    if pos >= 0:
        value = msg[pos + 10 :].strip(" =:'\"").lower()
        unified = value.startswith(("true", "1", "yes"))
    return ev.ServerInit(
        c[0], c[1], c[2], c[3], c[4], int(d["n_slots"]), int_or_none(d, "n_ctx_slot"), unified
    )


def model_loaded(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if msg.startswith("model loaded"):
        return ev.ModelLoaded(c[0], c[1], c[2], c[3], c[4])
    return None


def listening(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    m = _URL_RE.search(msg)
    if m is None or "listening" not in msg:
        return None
    return ev.Listening(c[0], c[1], c[2], c[3], c[4], m.group(1))


def capping(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    m = _CAP_RE.match(msg)
    if m is None:
        return None
    return ev.TrainContextCapped(c[0], c[1], c[2], c[3], c[4], int(m.group(1)), int(m.group(2)), "server")


def cleanup(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if "cleaning up before exit" in msg:
        return ev.ServerStopping(c[0], c[1], c[2], c[3], c[4])
    return None


def build(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    pos = msg.find("build")
    if pos < 0 or pos > 30:
        return None
    m = _BUILD_RE.match(msg, pos)
    if m is None:
        return None
    return ev.BuildInfo(c[0], c[1], c[2], c[3], c[4], int(m.group(1)), m.group(2) or None, msg[pos:].strip())


def build_func(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    return build("build: " + msg, c)


def main(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if msg.startswith("model loaded"):
        return ev.ModelLoaded(c[0], c[1], c[2], c[3], c[4])
    if msg.startswith("build"):
        return build(msg, c)
    if "listening" in msg:
        return listening(msg, c)
    if msg.startswith("loading model"):
        return loading(msg, c)
    return None


def param(msg: str) -> tuple[str, int | None, str] | None:
    m = _PARAM_RE.match(msg)
    if m is None:
        return None
    text = m.group(2).strip()
    return m.group(1).strip(), int_value(text), text


def print_info(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    p = param(msg)
    if p is None:
        return None
    return ev.ModelInfo(c[0], c[1], c[2], c[3], c[4], p[0], p[1], p[2])


def llama_context(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if "buffer size" in msg:
        return buffer(msg, c)
    m = _LLAMA_CAP_RE.match(msg)
    if m is not None:
        return ev.TrainContextCapped(c[0], c[1], c[2], c[3], c[4], int(m.group(1)), int(m.group(2)), "llama")
    if "(" in msg.split("=", 1)[0]:
        return None
    p = param(msg)
    if p is None or " " in p[0]:
        return None
    return ev.ContextParam(c[0], c[1], c[2], c[3], c[4], p[0], p[1], p[2])


def buffer(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
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


def kv_cache(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if "buffer size" in msg:
        return buffer(msg, c)
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


def fused_ops(msg: str, c: tuple[Any, ...]) -> ev.LogEvent | None:
    if not msg.startswith("Flash Attention"):
        return None
    enabled = msg.endswith("enabled") and "not supported" not in msg
    return ev.FlashAttention(c[0], c[1], c[2], c[3], c[4], enabled)
