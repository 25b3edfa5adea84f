"""Config loading: lookup order, the shipped config.toml, and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.core.config import ConfigError, Settings, find_config, load_settings, settings_from_dict

REPO = Path(__file__).resolve().parent.parent


def test_shipped_config_documents_the_defaults() -> None:
    loaded = load_settings(str(REPO / "config.toml"))
    defaults = Settings()
    sections = ("proxy", "journal", "anatomy", "server", "agent", "compact", "transforms", "report", "gpu")
    for section in (*sections, "dashboard"):
        assert getattr(loaded, section) == getattr(defaults, section), section


def test_every_option_is_in_the_shipped_config() -> None:
    import dataclasses
    import tomllib

    data = tomllib.loads((REPO / "config.toml").read_text())
    for f in dataclasses.fields(Settings):
        if f.name in ("source", "keys"):
            continue
        section = getattr(Settings(), f.name)
        for option in dataclasses.fields(section):
            assert option.name in data[f.name], f"[{f.name}] {option.name} missing from config.toml"


def test_unknown_key_names_file_key_and_valid_keys(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[proxy]\nlisten_addr = "x"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(str(cfg))
    message = str(err.value)
    assert str(cfg) in message and "listen_addr" in message and "listen" in message


def test_wrong_type_names_expected_type(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[journal]\nmax_rows = \"many\"\n")
    with pytest.raises(ConfigError, match=r"\[journal\] max_rows: expected int, got str"):
        load_settings(str(cfg))


def test_bool_is_not_an_int() -> None:
    with pytest.raises(ConfigError, match="expected int"):
        settings_from_dict({"journal": {"max_rows": True}})


def test_int_accepted_for_float() -> None:
    assert settings_from_dict({"server": {"poll_interval": 3}}).server.poll_interval == 3.0


def test_unknown_section() -> None:
    with pytest.raises(ConfigError, match=r"unknown section \[nope\]"):
        settings_from_dict({"nope": {}})


def test_bad_toml_syntax(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[proxy\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(str(cfg))


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CTXBUDGET_CONFIG", raising=False)
    assert find_config() is None
    user = tmp_path / "xdg" / "ctxbudget" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("")
    assert find_config() == user
    local = tmp_path / "config.toml"
    local.write_text("")
    assert find_config() == local
    env = tmp_path / "env.toml"
    env.write_text('[proxy]\nupstream = "http://127.0.0.1:9"\n')
    monkeypatch.setenv("CTXBUDGET_CONFIG", str(env))
    assert find_config() == env
    assert load_settings().proxy.upstream == "http://127.0.0.1:9"
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("")
    assert find_config(str(explicit)) == explicit


def test_missing_explicit_file() -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        find_config("/nonexistent/ctxbudget.toml")


def test_bad_transform_name_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[transforms]\nenabled = ["stabilise"]\n')
    with pytest.raises(ConfigError, match=r"c.toml: \[transforms\] unknown transforms"):
        load_settings(str(cfg))
