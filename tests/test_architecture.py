"""Layering: ``tui/core`` never imports Textual or ``tui.ui`` (checked on the AST and at runtime)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "tui" / "core"
FORBIDDEN = ("textual", "tui.ui")


def module_name(path: Path) -> str:
    """Dotted module name of a file in the repo (``tui/core/__init__.py`` -> ``tui.core``)."""
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, package: str) -> list[tuple[int, str]]:
    """(line, dotted name) for each import in ``source``, relative ones resolved against ``package``.

    ``from a import b`` yields both ``a`` and ``a.b``, since ``b`` may be a submodule.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base_parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def is_forbidden(name: str) -> bool:
    """Whether ``name`` is Textual or part of the UI layer."""
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def core_modules() -> list[Path]:
    """All Python files under tui/core."""
    return sorted(CORE.rglob("*.py"))


def _package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def test_core_is_walked() -> None:
    names = {module_name(p) for p in core_modules()}
    assert {"tui.core", "tui.core.config", "tui.core.llama_binary"} <= names


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_core_module_imports_no_ui(path: Path) -> None:
    imports = imports_of(path.read_text(), _package_of(path))
    bad = [f"line {line}: {name}" for line, name in imports if is_forbidden(name)]
    assert not bad, f"{path.relative_to(REPO)} imports UI code: {bad}"


def test_checker_sees_every_import_form() -> None:
    source = (
        "import json\n"
        "import textual.app\n"
        "from textual import work\n"
        "from ...ui import app\n"
        "from ..ui import helpers\n"
        "from . import tokens\n"
        "def lazy():\n"
        "    from tui.ui.screens import MainScreen\n"
    )
    names = [name for _, name in imports_of(source, "tui.core.proxy")]
    assert [n for n in names if is_forbidden(n)] == [
        "textual.app", "textual", "textual.work", "tui.ui", "tui.ui.app",
        "tui.ui.screens", "tui.ui.screens.MainScreen",
    ]
    # ``..ui`` seen from tui.core.proxy is tui.core.ui, which is allowed.
    assert {"json", "tui.core.ui.helpers", "tui.core.proxy.tokens"} <= set(names)


def test_importing_all_of_core_loads_no_ui() -> None:
    modules = [module_name(p) for p in core_modules()]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'textual' "
        "or m == 'tui.ui' or m.startswith('tui.ui.'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, f"importing tui.core failed:\n{out.stderr[-3000:]}"
    assert json.loads(out.stdout) == []
