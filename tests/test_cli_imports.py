"""Startup cost of `ctxbudget`: building the parser and loading the config import no heavy library.

The dashboard has to show its first frame fast, and every command module is imported to build the parser,
so each one imports only what its `register()` needs and loads the rest when its command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tui.cli import build_parser, main
from tui.core.config import COUNTER_MODES
from tui.core.report import FORMATS
from tui.core.transforms.registry import TRANSFORM_ORDER

REPO = Path(__file__).resolve().parent.parent

# Libraries and project modules that take tens to hundreds of milliseconds to import.
HEAVY = (
    "textual",
    "aiohttp",
    "httpx",
    "gguf",
    "numpy",
    "tiktoken",
    "libtmux",
    "prometheus_client",
    "tui.core.proxy",
    "tui.core.doctor",
    "tui.core.logs.events",
)

STARTUP = (
    "import json, sys\n"
    "import tui.cli\n"
    "args = tui.cli.build_parser().parse_args(['--attach'])\n"
    "tui.cli.load_settings(args.config)\n"
    "heavy = json.loads(sys.argv[1])\n"
    "prefixes = tuple(h + '.' for h in heavy)\n"
    "print(json.dumps(sorted(m for m in sys.modules if m in heavy or m.startswith(prefixes))))\n"
)


def subcommands() -> list[str]:
    """The names of every registered subcommand."""
    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return sorted(actions[0].choices)


def test_startup_imports_no_heavy_module(tmp_path: Path) -> None:
    # A fresh interpreter, with the full sample config (every section) found as ./config.toml.
    shutil.copy(REPO / "config.toml", tmp_path / "config.toml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTXBUDGET")}
    env.update(
        HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_DATA_HOME=str(tmp_path / "data")
    )
    out = subprocess.run(
        [sys.executable, "-c", STARTUP, json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert out.returncode == 0, f"building the parser or loading the config failed:\n{out.stderr[-3000:]}"
    loaded = json.loads(out.stdout)
    roots = sorted({h for h in HEAVY for m in loaded if m == h or m.startswith(h + ".")})
    assert not loaded, (
        f"`ctxbudget` startup (build_parser + load_settings) imports {', '.join(roots)} "
        f"({len(loaded)} modules: {', '.join(loaded[:15])}{' ...' if len(loaded) > 15 else ''}); "
        "import them inside the command functions of tui/commands/*_cmd.py, not at module level "
        "(find the importer with: python -X importtime -c 'import tui.cli; tui.cli.build_parser()')"
    )


def test_every_command_module_registers_a_command() -> None:
    names = subcommands()
    assert len(names) >= 12
    assert {"demo", "proxy", "inspect", "doctor", "transforms", "report"} <= set(names)


@pytest.mark.parametrize("command", [None, *subcommands()])
def test_help_of_every_command(command: str | None, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--help"] if command is None else [command, "--help"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ctxbudget" if command is None else f"usage: ctxbudget {command}")


@pytest.mark.parametrize(
    ("command", "choices"),
    [("inspect", COUNTER_MODES), ("transforms", TRANSFORM_ORDER), ("report", FORMATS)],
)
def test_choices_come_from_the_shared_constants(
    command: str, choices: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "{" + ",".join(choices) + "}" in capsys.readouterr().out
