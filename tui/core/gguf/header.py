"""Fast GGUF metadata reader: parses the key/value section and skips large arrays (the vocabulary)."""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import GGUF_MAGIC, GGUFValueType

# gguf.GGUFReader materialises every vocabulary string (30 s for a 128k vocab); metadata needs none.
MAX_KEPT_ARRAY = 4096

_SCALARS: dict[int, struct.Struct] = {
    GGUFValueType.UINT8: struct.Struct("<B"),
    GGUFValueType.INT8: struct.Struct("<b"),
    GGUFValueType.UINT16: struct.Struct("<H"),
    GGUFValueType.INT16: struct.Struct("<h"),
    GGUFValueType.UINT32: struct.Struct("<I"),
    GGUFValueType.INT32: struct.Struct("<i"),
    GGUFValueType.FLOAT32: struct.Struct("<f"),
    GGUFValueType.BOOL: struct.Struct("<?"),
    GGUFValueType.UINT64: struct.Struct("<Q"),
    GGUFValueType.INT64: struct.Struct("<q"),
    GGUFValueType.FLOAT64: struct.Struct("<d"),
}
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")


class GgufHeaderError(ValueError):
    """The bytes are not a GGUF header this reader understands."""


@dataclass(frozen=True)
class SkippedArray:
    """A metadata array too large to keep (e.g. tokenizer.ggml.tokens); only its length is known."""

    item_type: int
    count: int


@dataclass(frozen=True)
class GgufHeader:
    """The metadata of one GGUF file: version, tensor count and key/value fields."""

    version: int
    n_tensors: int
    fields: dict[str, Any]

    def get(self, key: str) -> Any:
        """One field's value, or None when absent."""
        return self.fields.get(key)


class _Cursor:
    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.pos = 0

    def unpack(self, fmt: struct.Struct) -> Any:
        if self.pos + fmt.size > len(self.data):
            raise GgufHeaderError("truncated GGUF header")
        (value,) = fmt.unpack_from(self.data, self.pos)
        self.pos += fmt.size
        return value

    def string(self) -> str:
        length = self.unpack(_U64)
        end = self.pos + length
        if end > len(self.data):
            raise GgufHeaderError("truncated GGUF string")
        raw = self.data[self.pos:end]
        self.pos = end
        return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        length = self.unpack(_U64)  # read first: `self.pos += self.unpack(...)` would use the old pos
        self.pos += length

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            item_type = self.unpack(_U32)
            count = self.unpack(_U64)
            if count > MAX_KEPT_ARRAY:
                self.skip_array(item_type, count)
                return SkippedArray(item_type, count)
            return [self.value(item_type) for _ in range(count)]
        raise GgufHeaderError(f"unknown GGUF value type {vtype}")

    def skip_array(self, item_type: int, count: int) -> None:
        if item_type in _SCALARS:
            self.pos += _SCALARS[item_type].size * count
        elif item_type == GGUFValueType.STRING:
            for _ in range(count):
                self.skip_string()
        else:
            for _ in range(count):
                self.value(item_type)
        if self.pos > len(self.data):
            raise GgufHeaderError("truncated GGUF array")


def read_header(path: Path) -> GgufHeader:
    """Parse the metadata section of a GGUF file without touching tensor data."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        cursor = _Cursor(data)
        if cursor.unpack(_U32) != GGUF_MAGIC:
            raise GgufHeaderError("not a GGUF file (bad magic)")
        version = cursor.unpack(_U32)
        if version not in (2, 3):
            raise GgufHeaderError(f"unsupported GGUF version {version} (big-endian or too old?)")
        n_tensors = cursor.unpack(_U64)
        n_kv = cursor.unpack(_U64)
        fields: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cursor.string()
            fields[key] = cursor.value(cursor.unpack(_U32))
        return GgufHeader(version, n_tensors, fields)
