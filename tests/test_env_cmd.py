"""`ctxbudget env` on the real SmolLM2 and a real llama-server: model id, limits, first-request warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.llama import StartServer
from test_doctor import journal_with_main_request

CONSOLE_SCRIPT = Path(sys.executable).with_name("ctxbudget")
pytestmark = [pytest.mark.llama]


def run_env(tmp_path: Path, *args: str, journal: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.toml"
    config.write_text(f'[journal]\npath = "{journal}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTXBUDGET", "CLAUDE_CODE"))}
    env.update(
        HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "cfg")
    )
    return subprocess.run(
        [str(CONSOLE_SCRIPT), "--config", str(config), "env", *args],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )


def test_env_for_smollm2(llama_server: StartServer, real_model: Path, tmp_path: Path) -> None:
    server = llama_server(real_model, ctx_size=8192)
    empty = tmp_path / "none.sqlite3"

    opencode = run_env(tmp_path, "--client", "opencode", "--upstream", server.url, journal=empty)
    assert opencode.returncode == 0, opencode.stderr
    provider = json.loads(opencode.stdout)["provider"]["ctxbudget"]
    (model_id,) = provider["models"]
    assert model_id == "SmolLM2-135M-Instruct.Q4_1"  # not the GGUF path the server reports
    limit = provider["models"][model_id]["limit"]
    # /props does not show -n: the answer reserve is 1/8 of a small window (n_ctx/4 wasted a quarter).
    assert limit == {"context": 8192, "output": 8192 // 8}
    assert "unknown" not in opencode.stderr and "warning" not in opencode.stderr

    claude = run_env(tmp_path, "--upstream", server.url, journal=empty)
    assert "export CLAUDE_CODE_AUTO_COMPACT_WINDOW=8192" in claude.stdout
    assert "smaller than the agent's smallest request (28,000 tokens" in claude.stdout

    measured = journal_with_main_request(tmp_path / "j.sqlite3", 9_000)
    opencode = run_env(tmp_path, "--client", "opencode", "--upstream", server.url, journal=Path(measured))
    warning = "per-slot context (8,192 tokens) is smaller than the agent's smallest request (9,000"
    assert warning in opencode.stderr


def test_env_opencode_with_server_down_names_the_missing_limit(tmp_path: Path) -> None:
    from support.llama import free_port

    out = run_env(tmp_path, "--client", "opencode", "--upstream", f"http://127.0.0.1:{free_port()}",
                  journal=tmp_path / "none.sqlite3")
    assert out.returncode == 0
    assert "no limit: set [agent] context_window" in out.stderr and "from unknown" not in out.stderr


def test_env_never_prints_the_upstream_password(tmp_path: Path) -> None:
    from support.llama import free_port

    out = run_env(tmp_path, "--upstream", f"http://alice:hunter2@127.0.0.1:{free_port()}",
                  journal=tmp_path / "none.sqlite3")
    assert out.returncode == 0, out.stderr
    assert "alice:[redacted]@127.0.0.1" in out.stdout
    assert "hunter2" not in out.stdout + out.stderr
