"""`ctxbudget inspect FILE`: JSON contract, readable table, wrappers and clear errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from builders import cc_request, oc_request

from tui.commands import inspect_cmd
from tui.core.anatomy.model import CATEGORIES
from tui.core.config import Settings


def run(
    argv: list[str], capsys: pytest.CaptureFixture[str], settings: Settings | None = None
) -> tuple[int, str, str]:
    root = argparse.ArgumentParser(prog="ctxbudget")
    inspect_cmd.register(root.add_subparsers(dest="command"), root)
    args = root.parse_args(["inspect", *argv])
    code = args.func(args, settings or Settings())
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, data: Any, name: str = "req.json") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def test_json_contract_for_claude_code_body(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([write(tmp_path, cc_request()), "--json", "--counter", "tiktoken"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["dialect"] == "anthropic" and data["counter"] == "tiktoken-cl100k"
    assert list(data["categories"]) == list(CATEGORIES)
    assert data["total_tokens"] == sum(data["categories"].values())
    assert data["mcp_servers"]["filesystem"]["tools"] == 5
    assert {"name", "server", "tokens"} <= set(data["tools"][0])
    assert (
        sum(t["tokens"] for t in data["tools"])
        == data["categories"]["tools"] + data["categories"]["mcp_tools"]
    )


def test_wrapper_with_path_and_mcp_server_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wrapped = {"path": "/v1/chat/completions", "body": oc_request()}
    file = write(tmp_path, wrapped)
    code, out, _ = run([file, "--json", "--counter", "tiktoken", "--mcp-server", "filesystem"], capsys)
    data = json.loads(out)
    assert code == 0 and data["dialect"] == "openai"
    assert set(data["mcp_servers"]) == {"filesystem"}
    # config servers and flags add up
    settings = Settings()
    settings = type(settings)(anatomy=type(settings.anatomy)(mcp_servers=["memory"], counter="tiktoken"))
    code, out, _ = run([file, "--json", "--mcp-server", "filesystem"], capsys, settings)
    assert set(json.loads(out)["mcp_servers"]) == {"filesystem", "memory"}


def test_body_as_json_string(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = write(tmp_path, {"body": json.dumps(cc_request())})
    code, out, _ = run([file, "--json", "--counter", "tiktoken"], capsys)
    assert code == 0 and json.loads(out)["dialect"] == "anthropic"


def test_plain_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([write(tmp_path, cc_request()), "--counter", "tiktoken"], capsys)
    assert code == 0
    assert "counter: tiktoken-cl100k (estimate)" in out
    for name in ("system", "tools", "mcp_tools", "reminders", "latest_user", "images"):
        assert any(line.split()[:1] == [name] and line.rstrip().endswith(("%", "images)")) for line in
                   out.splitlines()), name  # fmt: skip
    assert "filesystem" in out and "(helpers)" in out and "top tools" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "malformed JSON"),
        ("just text", "not JSON"),
        ('{"foo": 1}', "no messages list"),
        ('{"path": "/health", "body": {"messages": []}}', "not a model request"),
        ('{"body": 5}', "must hold a JSON object"),
    ],
    ids=["missing", "malformed", "text", "no-messages", "bad-path", "bad-body"],
)
def test_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    file = str(tmp_path / "missing.json") if content is None else write(tmp_path, content)
    code, out, err = run([file, "--counter", "tiktoken"], capsys)
    assert code == 1 and out == ""
    assert err.startswith("ctxbudget inspect:") and message in err


def test_server_counter_with_no_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], free_port: int
) -> None:
    file = write(tmp_path, cc_request())
    code, _, err = run([file, "--counter", "server", "--server", f"http://127.0.0.1:{free_port}"], capsys)
    assert code == 1 and "not reachable" in err
    code, out, _ = run([file, "--json", "--server", f"http://127.0.0.1:{free_port}"], capsys)
    assert code == 0 and json.loads(out)["counter"] == "tiktoken-cl100k"


def test_console_entry_point(tmp_path: Path) -> None:
    """The real `ctxbudget inspect` path (tui.cli) with a config file naming the MCP servers."""
    import subprocess
    import sys

    config = tmp_path / "config.toml"
    config.write_text('[anatomy]\nmcp_servers = ["filesystem"]\ncounter = "tiktoken"\n')
    file = write(tmp_path, {"path": "/v1/chat/completions", "body": oc_request()})
    out = subprocess.run(
        [sys.executable, "-m", "tui", "--config", str(config), "inspect", file, "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["counter"] == "tiktoken-cl100k" and set(data["mcp_servers"]) == {"filesystem"}
