"""GGUF header reading and KV-cache size estimates for planned llama-server launches."""

from tui.core.gguf.kv_estimate import CACHE_TYPE_BYTES, KvEstimate, estimate_kv, plan_context
from tui.core.gguf.reader import GgufError, GgufInfo, read_gguf_info

__all__ = [
    "CACHE_TYPE_BYTES",
    "GgufError",
    "GgufInfo",
    "KvEstimate",
    "estimate_kv",
    "plan_context",
    "read_gguf_info",
]
