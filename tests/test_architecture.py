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


TUI = REPO / "tui"


def import_graph() -> dict[str, set[str]]:
    """Module -> the tui modules it imports: at top level, inside functions or under TYPE_CHECKING.

    Importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first, so those count as imported too.
    """
    paths = {module_name(p): p for p in sorted(TUI.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        targets: set[str] = set()
        for _, imported in imports_of(path.read_text(), _package_of(path)):
            if imported not in paths:
                continue
            parts = imported.split(".")
            targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
        # A module's own packages are already running when it is imported: not an edge.
        graph[name] = {t for t in targets if t in paths and t != name and not name.startswith(t + ".")}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One example cycle per strongly connected group of modules (Tarjan), as a closed path."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: set[str] = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(graph, group) for group in groups]


def _cycle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    start = min(group)
    path = [start]
    seen = {start}
    while True:
        nxt = min(n for n in graph[path[-1]] if n in group)
        if nxt in seen:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
        seen.add(nxt)


def test_no_import_cycle_inside_tui() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles (function-local and TYPE_CHECKING imports count):\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


def test_cycle_finder_sees_local_type_checking_and_package_imports() -> None:
    graph = {
        "p": {"p.b"},  # p/__init__ re-exports from p.b
        "p.a": {"p.b"},
        "p.b": {"q"},
        "q": {"p", "p.c"},  # importing p.c runs p/__init__, which imports p.b
        "p.c": set(),
    }
    cycles = find_cycles(graph)
    assert len(cycles) == 1 and cycles[0][0] == cycles[0][-1] and {"p", "p.b", "q"} <= set(cycles[0])
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from tui.core.tokens import TokenCounter\n"
        "def later():\n"
        "    from tui.core.transforms.pipeline import run_transforms\n"
    )
    names = {name for _, name in imports_of(source, "tui.core")}
    assert {"tui.core.tokens", "tui.core.transforms.pipeline"} <= names


WORKER_START = (
    "import pickle, sys\n"
    "from tui.core.analysis.worker_process import main\n"
    "capture = pickle.loads(bytes.fromhex(sys.argv[1]))\n"
    "assert capture.rewrite is not None\n"
    "bad = ('aiohttp', 'tui.core.proxy')\n"
    "print(sorted(m for m in sys.modules if m in bad or m.startswith(tuple(b + '.' for b in bad))))\n"
)


def test_analysis_worker_imports_neither_aiohttp_nor_the_proxy() -> None:
    import pickle

    from tui.core.analysis.capture import Capture, RewriteNote

    capture = Capture("POST", "/v1/messages", [("content-type", "application/json")], b'{"model":"m"}', 1.0)
    capture.rewrite = RewriteNote("anthropic", ("stabilize",), ("stabilize",))
    out = subprocess.run(
        [sys.executable, "-c", WORKER_START, pickle.dumps(capture).hex()],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"


SETTINGS_LEAVES = {"tui.core.transforms.settings", "tui.core.report.prices"}


def test_settings_import_no_feature_code_when_loaded() -> None:
    # Packages on the way (tui, tui.core.report...) run their __init__, which must load nothing more.
    code = (
        "import json, sys, tui.core.config\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('tui.')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = set(json.loads(out.stdout))
    packages = {".".join(m.split(".")[:i]) for m in SETTINGS_LEAVES for i in range(2, m.count(".") + 1)}
    assert loaded - packages - SETTINGS_LEAVES == {"tui.core.config"}
    # The leaves themselves import no other tui module, even inside functions.
    graph = import_graph()
    for leaf in SETTINGS_LEAVES:
        assert {m for m in graph[leaf] if m not in packages} == set(), leaf
