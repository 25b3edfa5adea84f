"""Image token estimates from the pixel size found in the image header (Anthropic's (w*h)/750 rule)."""

from __future__ import annotations

import base64
import binascii
import math
import struct

# Used when the size cannot be read (URL sources, unknown formats): the most one image costs
# on Anthropic's scale after its automatic downscaling (about 1.15 megapixels).
FLAT_IMAGE_TOKENS = 1600
MAX_LONG_EDGE = 1568
MAX_PIXELS = 1_150_000
_HEADER_B64_CHARS = 65_536


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, JPEG or WebP header, else None."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
    except struct.error:
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        return int(w & 0x3FFF), int(h & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25:
        b = data[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return w, h
    if chunk == b"VP8X" and len(data) >= 30:
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
        return w, h
    return None


def size_from_base64(b64: str) -> tuple[int, int] | None:
    """Decode only the start of a base64 image and read its size."""
    head = b64[:_HEADER_B64_CHARS].strip()
    head = head[: len(head) - len(head) % 4]
    try:
        return image_size(base64.b64decode(head))
    except (binascii.Error, ValueError):
        return None


def size_from_data_url(url: str) -> tuple[int, int] | None:
    """Size of a `data:image/...;base64,...` URL; None for remote URLs."""
    if not url.startswith("data:"):
        return None
    _, sep, payload = url.partition(",")
    return size_from_base64(payload) if sep else None


def image_tokens(size: tuple[int, int] | None) -> int:
    """(w*h)/750 after downscaling to a 1568 px long edge and ~1.15 MP; the flat estimate when unknown."""
    if size is None:
        return FLAT_IMAGE_TOKENS
    w, h = size
    if w <= 0 or h <= 0:
        return FLAT_IMAGE_TOKENS
    scale = min(1.0, MAX_LONG_EDGE / max(w, h), math.sqrt(MAX_PIXELS / (w * h)))
    return max(1, math.ceil((w * scale) * (h * scale) / 750))
