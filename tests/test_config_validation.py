"""Bad config gets one line naming file, key and fix, and exit 2 (a few through the real console script)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tui.core.config import ConfigError, Settings, load_settings, settings_from_dict, with_overrides
from tui.core.settings_checks import host_kind, listen_problem, url_problem

CONSOLE_SCRIPT = Path(sys.executable).with_name("ctxbudget")


def run_ctxbudget(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `ctxbudget` console script with a scratch HOME and no CTXBUDGET_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTXBUDGET")}
    env.update(
        HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_DATA_HOME=str(tmp_path / "data")
    )
    return subprocess.run(
        [str(CONSOLE_SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    ("toml", "needles"),
    [
        ('[anatomy]\ncounter = "magic"\n', ("[anatomy] counter", "'magic'", "'tiktoken'")),
        ('[proxy]\nupstream = "not a url"\n', ("[proxy] upstream", "http://127.0.0.1:8080")),
        ('[proxy]\nlisten = "256.1.1.1:3000"\n', ("[proxy] listen", "not an IP address or host name")),
        ('[journal]\nretention_days = -1\n', ("[journal] retention_days", "use 0 or more")),
    ],
)
def test_console_script_rejects_bad_values(tmp_path: Path, toml: str, needles: tuple[str, ...]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(toml)
    result = run_ctxbudget(tmp_path, "--config", str(config), "requests")
    assert_one_line_error(result, str(config), *needles)


def test_console_script_non_utf8_file(tmp_path: Path) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes(b'[server]\n# caf\xe9\nurl = "http://127.0.0.1:8080"\n')
    result = run_ctxbudget(tmp_path, "--config", str(config), "requests")
    assert_one_line_error(result, str(config), "line 2", "0xe9", "UTF-8")


def test_console_script_config_is_a_directory(tmp_path: Path) -> None:
    result = run_ctxbudget(tmp_path, "--config", str(tmp_path), "requests")
    assert_one_line_error(result, str(tmp_path), "is a directory", "--config", "config.toml")


def test_console_script_bad_listen_flag(tmp_path: Path) -> None:
    result = run_ctxbudget(tmp_path, "proxy", "--listen", "1.2.3.999:3999", "--journal", str(tmp_path / "j"))
    assert_one_line_error(result, "command line", "[proxy] listen", "not an IP address or host name")


def test_console_script_remote_listen_names_key_and_flag(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[proxy]\nlisten = "0.0.0.0:3999"\n')
    result = run_ctxbudget(tmp_path, "--config", str(config), "proxy", "--journal", str(tmp_path / "j"))
    assert_one_line_error(result, "'0.0.0.0:3999' is not loopback", "--allow-remote", "[proxy] allow_remote")


def test_console_script_journal_directory(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[journal]\npath = "{tmp_path}"\n')
    result = run_ctxbudget(tmp_path, "--config", str(config), "proxy")
    assert_one_line_error(result, str(config), "[journal] path", "is a directory", "journal.sqlite3")


def _error(data: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as err:
        settings_from_dict(data, "/etc/c.toml")
    message = str(err.value)
    assert message.startswith("/etc/c.toml: ") and "\n" not in message
    return message


@pytest.mark.parametrize(
    ("section", "key", "value", "needle"),
    [
        ("proxy", "upstream", "ftp://127.0.0.1:8080", "not an http:// or https:// URL"),
        ("proxy", "upstream", "http://", "no valid host"),
        ("proxy", "upstream", "http://127.0.0.1:99999", "not a valid URL"),
        ("proxy", "listen", "3000", "not HOST:PORT"),
        ("proxy", "listen", "127.0.0.1:http", "not a number"),
        ("proxy", "listen", "127.0.0.1:70000", "not a number from 0 to 65535"),
        ("proxy", "analysis", "fork", "'process', 'thread'"),
        ("proxy", "capture_limit_mb", 0, "use 1 or more"),
        ("journal", "max_rows", -5, "0 keeps any number of rows"),
        ("journal", "retention_days", -0.5, "0 keeps rows of any age"),
        ("server", "url", "localhost:8080", "not an http:// or https:// URL"),
        ("server", "poll_interval", 0, "greater than 0"),
        ("server", "poll_interval", -2.0, "greater than 0"),
        ("server", "port", 70000, "0 to 65535"),
        ("gpu", "interval", 0, "greater than 0"),
        ("compact", "mode", "auto", "'pane', 'proxy'"),
        ("dashboard", "log_lines", 0, "use 1 or more"),
    ],
)
def test_bad_value_names_file_key_and_fix(section: str, key: str, value: object, needle: str) -> None:
    message = _error({section: {key: value}})
    assert f"[{section}] {key}: " in message
    assert needle in message


def test_remote_listen_is_left_to_start_time() -> None:
    """--allow-remote may be given on the command line after the file is read."""
    settings = settings_from_dict({"proxy": {"listen": "0.0.0.0:3000"}})
    assert settings.proxy.listen == "0.0.0.0:3000"
    assert with_overrides(settings, "proxy", allow_remote=True).proxy.allow_remote


def test_good_values_pass() -> None:
    data: dict[str, object] = {
        "proxy": {"listen": "[::1]:3000", "upstream": "https://gpu-box.lan:8443/"},
        "journal": {"retention_days": 0, "max_rows": 0},
        "server": {"url": "http://[::1]:8080", "poll_interval": 0.25},
        "anatomy": {"counter": "tiktoken"},
    }
    settings = settings_from_dict(data)
    assert settings.anatomy.counter == "tiktoken"
    assert settings_from_dict({}) == Settings(source="<dict>")


def test_overrides_are_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"command line: \[proxy\] upstream: 'nope'"):
        with_overrides(Settings(), "proxy", upstream="nope")
    with pytest.raises(ConfigError, match=r"\[journal\] path: .* is a directory"):
        with_overrides(Settings(), "journal", path=str(tmp_path))
    assert with_overrides(Settings(), "proxy", listen="0.0.0.0:1").proxy.listen == "0.0.0.0:1"  # env command


def test_missing_config_file_names_where_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTXBUDGET_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="given in CTXBUDGET_CONFIG"):
        load_settings()


@pytest.mark.parametrize(
    ("host", "kind"),
    [("localhost", "loopback"), ("127.0.0.1", "loopback"), ("::1", "loopback"), ("0.0.0.0", "remote"),
     ("gpu-box.lan", "remote"), ("256.1.1.1", None), ("1.2.3", None), ("bad host", None), ("", None)],
)
def test_host_kind(host: str, kind: str | None) -> None:
    assert host_kind(host) == kind


def test_listen_and_url_problems_none_for_good_values() -> None:
    assert listen_problem("127.0.0.1:0") is None
    assert listen_problem(":3000") is None
    assert listen_problem("0.0.0.0:3000") is None
    assert url_problem("http://127.0.0.1:8080") is None


def test_console_script_listen_in_use_names_key_and_file(tmp_path: Path) -> None:
    import socket

    config = tmp_path / "c.toml"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config.write_text(f'[proxy]\nlisten = "127.0.0.1:{port}"\n')
        result = run_ctxbudget(tmp_path, "--config", str(config), "proxy", "--journal", str(tmp_path / "j"))
    assert result.returncode == 1, result.stderr  # the config is fine; the address is taken
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in (f"127.0.0.1:{port}", "[proxy] listen", str(config), "--listen HOST:PORT"):
        assert needle in lines[0], lines[0]


def test_parse_listen_does_not_call_a_bad_address_remote() -> None:
    from tui.core.proxy.address import parse_listen

    with pytest.raises(ConfigError, match="is not an IP address or host name") as err:
        parse_listen("256.1.1.1:3000")
    assert "loopback" not in str(err.value)
