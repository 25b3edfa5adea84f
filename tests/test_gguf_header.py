"""The fast GGUF header reader agrees with gguf.GGUFReader and skips only large arrays."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf import GGUFReader

from tui.core.gguf.header import MAX_KEPT_ARRAY, GgufHeaderError, SkippedArray, read_header


@pytest.mark.parametrize("model_fixture", ["tiny_model", "swa_model"])
def test_header_matches_gguf_reader(model_fixture: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(model_fixture)
    header = read_header(path)
    reference = GGUFReader(path)
    assert header.n_tensors == len(reference.tensors)
    assert set(header.fields) == {k for k in reference.fields if not k.startswith("GGUF.")}
    compared = 0
    for key, field in reference.fields.items():
        if key.startswith("GGUF."):
            continue
        ours = header.get(key)
        if isinstance(ours, SkippedArray):
            assert len(field.data) == ours.count > MAX_KEPT_ARRAY
            continue
        theirs = field.contents()
        if isinstance(theirs, float):
            assert ours == pytest.approx(theirs)
        else:
            assert ours == theirs, key
        compared += 1
    assert compared >= 10
    assert isinstance(header.get("tokenizer.ggml.tokens"), SkippedArray)


def test_rejects_non_gguf(tmp_path: Path) -> None:
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"NOPE" + bytes(64))
    with pytest.raises(GgufHeaderError, match="bad magic"):
        read_header(bad)


def test_rejects_truncated(tmp_path: Path, tiny_model: Path) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_model.read_bytes()[:200])
    with pytest.raises(GgufHeaderError, match="truncated"):
        read_header(cut)
