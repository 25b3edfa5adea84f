"""The autouse fixture keeps the developer's own config and data out of every test (and its children)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.actions.state_files import data_dir
from tui.core.config import find_config, user_config_path


def test_config_and_data_dirs_are_the_tests_own(isolated_user_dirs: Path) -> None:
    assert data_dir().is_relative_to(isolated_user_dirs)
    assert user_config_path().is_relative_to(isolated_user_dirs)
    found = find_config()
    assert found is None or found.resolve() == (Path.cwd() / "config.toml").resolve()  # never the user's


def test_a_child_process_sees_the_same_isolated_dirs(isolated_user_dirs: Path) -> None:
    code = "from tui.core.actions.state_files import data_dir; print(data_dir())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).is_relative_to(isolated_user_dirs)


def test_a_switched_off_server_stays_inside_the_test() -> None:
    store = McpSwitchStore()
    store.set_enabled("filesystem", False)
    assert json.loads(store.path.read_text())["off"] == ["filesystem"]  # written under this test's data dir
    assert "filesystem" in McpSwitchStore().off()


def test_the_next_test_starts_with_every_server_on() -> None:
    assert McpSwitchStore().off() == frozenset()
