"""The header serializer: aiohttp's C one for plain ASCII heads, the byte-restoring one otherwise."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from tui.core.proxy import header_bytes

STATUS = "POST /v1/messages?beta=true HTTP/1.1"


def _python_only(status_line: str, headers: CIMultiDict[str]) -> bytes:
    fast = header_bytes._C_SERIALIZE
    header_bytes._C_SERIALIZE = None
    try:
        return header_bytes.serialize_headers(status_line, headers)
    finally:
        header_bytes._C_SERIALIZE = fast


@pytest.mark.parametrize(
    "value",
    ["application/json", "tab\tinside", "caf\u00e9", "r\udce9ponse \udcff", "\u2603 snow", ""],
    ids=["ascii", "tab", "utf8", "surrogate-escaped", "bmp", "empty"],
)
def test_same_bytes_on_both_paths(value: str) -> None:
    headers = CIMultiDict([("Content-Type", "application/json"), ("X-Value", value)])
    expected = _python_only(STATUS, headers)
    assert header_bytes.serialize_headers(STATUS, headers) == expected
    assert expected.endswith(b"\r\n\r\n")


def test_surrogate_escaped_bytes_come_back_as_received() -> None:
    raw = b"caf\xe9 \xff\xfe"
    headers = CIMultiDict([("X-Odd", raw.decode("utf-8", "surrogateescape"))])
    assert b"\r\nX-Odd: caf\xe9 \xff\xfe\r\n" in header_bytes.serialize_headers(STATUS, headers)


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "nul\x00", "del\x7f"])
@pytest.mark.parametrize("python_path", [False, True], ids=["c", "python"])
def test_injection_refused_on_both_paths(value: str, python_path: bool) -> None:
    headers = CIMultiDict([("X-Value", value)])
    serialize = _python_only if python_path else header_bytes.serialize_headers
    with pytest.raises(ValueError):
        serialize(STATUS, headers)
