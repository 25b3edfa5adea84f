"""Read the GGUF header fields that decide context limits and KV-cache size (tensors stay on disk)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.core.gguf.header import GgufHeader, SkippedArray, read_header
from tui.core.gguf.swa import swa_layers


class GgufError(ValueError):
    """A file is missing, unreadable or not a GGUF model."""


@dataclass(frozen=True)
class GgufInfo:
    """Architecture facts from one GGUF header; per-layer tuples have n_layer entries."""

    path: str
    file_size: int
    architecture: str
    name: str
    file_type: int | None
    file_type_name: str
    n_ctx_train: int | None
    n_embd: int
    n_layer: int
    n_head: tuple[int, ...]
    n_head_kv: tuple[int, ...]
    key_length: int
    value_length: int
    key_length_swa: int
    value_length_swa: int
    n_swa: int
    swa: tuple[bool, ...]
    swa_pattern_known: bool
    kv_lora_rank: int | None = None
    key_length_mla: int | None = None
    value_length_mla: int | None = None
    shared_kv_layers: int = 0
    nextn_predict_layers: int = 0
    ssm_conv_kernel: int = 0
    ssm_inner_size: int = 0
    ssm_state_size: int = 0
    ssm_group_count: int = 0
    full_attention_interval: int = 0
    split_count: int = 1
    n_tensors: int = 0

    @property
    def is_mla(self) -> bool:
        """Multi-head latent attention (DeepSeek-style): K only, no V cache."""
        return self.key_length_mla is not None and self.key_length_mla > 0

    @property
    def is_recurrent(self) -> bool:
        """Has a recurrent (SSM) state besides or instead of the KV cache."""
        return self.ssm_inner_size > 0 or self.ssm_state_size > 0

    @property
    def recurrent_layers(self) -> tuple[bool, ...]:
        """Layers holding a recurrent state: every n-th layer is attention with full_attention_interval,
        otherwise the layers without KV heads."""
        if not self.is_recurrent:
            return (False,) * self.n_layer
        if self.full_attention_interval > 0:
            return tuple((il + 1) % self.full_attention_interval != 0 for il in range(self.n_layer))
        return tuple(h == 0 for h in self.n_head_kv)

    @property
    def kv_layers(self) -> tuple[bool, ...]:
        """Which layers own a KV cache (not shared-KV tail layers, not recurrent or 0-KV-head layers)."""
        owners = self.n_layer - self.shared_kv_layers if self.shared_kv_layers else self.n_layer
        recurrent = self.recurrent_layers
        return tuple(
            il < owners and self.n_head_kv[il] > 0 and not recurrent[il] for il in range(self.n_layer)
        )


def _field(reader: GgufHeader, key: str) -> Any:
    value = reader.get(key)
    return None if isinstance(value, SkippedArray) else value


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int | float):
        return int(value)
    return default


def _per_layer(value: Any, n_layer: int, default: int) -> tuple[int, ...]:
    if isinstance(value, list):
        values = [_int(v) for v in value][:n_layer]
        return tuple(values + [values[-1] if values else default] * (n_layer - len(values)))
    return (_int(value, default),) * n_layer


def _file_type_name(file_type: int | None) -> str:
    if file_type is None:
        return "file type unknown"
    try:
        from gguf import LlamaFileType

        return LlamaFileType(file_type).name.removeprefix("MOSTLY_")
    except (ImportError, ValueError):
        return f"type {file_type}"


def _model_size(file: Path, split_count: int) -> int:
    """Bytes of the model, summing all shards of a split model (name-00001-of-00003.gguf)."""
    size = file.stat().st_size
    marker = f"-00001-of-{split_count:05d}"
    if split_count <= 1 or marker not in file.name:
        return size
    for index in range(2, split_count + 1):
        shard = file.with_name(file.name.replace(marker, f"-{index:05d}-of-{split_count:05d}"))
        if shard.is_file():
            size += shard.stat().st_size
    return size


def read_gguf_info(path: str | os.PathLike[str]) -> GgufInfo:
    """Read model facts from a GGUF header (for split models, the first shard holds them)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise GgufError(f"{file}: model file not found")
    try:
        reader = read_header(file)
    except (ValueError, OSError) as exc:
        raise GgufError(f"{file}: not a readable GGUF file ({exc})") from exc
    arch = _field(reader, "general.architecture")
    if not isinstance(arch, str) or not arch:
        raise GgufError(f"{file}: GGUF header has no general.architecture")

    def key(name: str) -> Any:
        return _field(reader, f"{arch}.{name}")

    n_layer = _int(key("block_count"))
    n_embd = _int(key("embedding_length"))
    n_head = _per_layer(key("attention.head_count"), n_layer, 0)
    raw_kv = key("attention.head_count_kv")
    n_head_kv = n_head if raw_kv is None else _per_layer(raw_kv, n_layer, 0)
    head0 = max(n_head) if n_head else 0
    default_head_dim = n_embd // head0 if head0 else 0
    key_length = _int(key("attention.key_length"), default_head_dim)
    value_length = _int(key("attention.value_length"), default_head_dim)
    n_swa = _int(key("attention.sliding_window"))
    pattern = key("attention.sliding_window_pattern")
    swa, window, known = swa_layers(
        arch, n_layer, n_swa, pattern if isinstance(pattern, list | int) else None
    )
    key_mla = key("attention.key_length_mla")
    value_mla = key("attention.value_length_mla")
    file_type = _field(reader, "general.file_type")
    name = _field(reader, "general.name")
    split = _field(reader, "split.count")
    n_ctx_train = _int(key("context_length"))
    return GgufInfo(
        path=str(file),
        file_size=_model_size(file, _int(split, 1)),
        architecture=arch,
        name=name if isinstance(name, str) else "",
        file_type=_int(file_type) if file_type is not None else None,
        file_type_name=_file_type_name(_int(file_type) if file_type is not None else None),
        n_ctx_train=n_ctx_train or None,
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=n_head,
        n_head_kv=n_head_kv,
        key_length=key_length,
        value_length=value_length,
        key_length_swa=_int(key("attention.key_length_swa"), key_length),
        value_length_swa=_int(key("attention.value_length_swa"), value_length),
        n_swa=window,
        swa=swa,
        swa_pattern_known=known,
        kv_lora_rank=_int(key("attention.kv_lora_rank")) or None,
        key_length_mla=_int(key_mla) or None,
        value_length_mla=_int(value_mla) or None,
        shared_kv_layers=_int(key("attention.shared_kv_layers")),
        nextn_predict_layers=_int(key("nextn_predict_layers")),
        ssm_conv_kernel=_int(key("ssm.conv_kernel")),
        ssm_inner_size=_int(key("ssm.inner_size")),
        ssm_state_size=_int(key("ssm.state_size")),
        ssm_group_count=_int(key("ssm.group_count")),
        full_attention_interval=_int(key("full_attention_interval")),
        split_count=_int(split, 1) or 1,
        n_tensors=reader.n_tensors,
    )
