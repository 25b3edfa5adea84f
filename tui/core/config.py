"""Typed settings loaded from TOML, with errors that name the file, the key and the fix."""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from tui.core.report.prices import ReportSettings, report_settings_from_dict
from tui.core.transforms.settings import TransformSettings

APP_NAME = "ctxbudget"


class ConfigError(ValueError):
    """A config file could not be used; the message names file, key and fix."""


@dataclass(frozen=True)
class ProxySettings:
    """Where the proxy listens and where it forwards."""

    listen: str = "127.0.0.1:3000"
    upstream: str = "http://127.0.0.1:8080"
    allow_remote: bool = False
    analysis: str = "process"
    capture_limit_mb: int = 32
    backlog_mb: int = 16
    header_timeout: float = 60.0
    body_timeout: float = 60.0


@dataclass(frozen=True)
class JournalSettings:
    """The SQLite traffic journal."""

    path: str = ""
    store_bodies: bool = False
    retention_days: float = 30.0
    max_rows: int = 200_000


# Valid values of [anatomy] counter (tui.core.tokens.make_counter builds each); here so that the CLI can
# offer them without importing the counters.
COUNTER_MODES: tuple[str, ...] = ("auto", "server", "tiktoken")


@dataclass(frozen=True)
class AnatomySettings:
    """How requests are split into categories and counted."""

    mcp_servers: list[str] = field(default_factory=list)
    counter: str = "auto"


@dataclass(frozen=True)
class ServerSettings:
    """The llama-server being watched (and, for the doctor, the planned launch settings)."""

    url: str = "http://127.0.0.1:8080"
    api_key: str = ""
    log_file: str = ""
    poll_interval: float = 2.0
    model: str = ""
    ctx_size: int = 0
    parallel: int = 0
    flash_attn: str = "auto"
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    n_gpu_layers: str = "auto"
    kv_unified: bool = False
    binary: str = ""
    port: int = 0
    jinja: bool = True
    extra_args: list[str] = field(default_factory=list)
    autostart: bool = False
    stop_timeout: float = 10.0


@dataclass(frozen=True)
class CompactSettings:
    """How `compact` reaches the agent (tmux pane) or rewrites requests (proxy)."""

    mode: str = "pane"
    pane: str = ""
    keep_turns: int = 2
    agent_command: str = "claude"
    tmux_socket: str = ""


@dataclass(frozen=True)
class AgentSettings:
    """What the coding agent assumes about its context window."""

    client: str = "claude"
    context_window: int = 0


@dataclass(frozen=True)
class GpuSettings:
    """GPU sampling through NVML."""

    enabled: bool = True
    interval: float = 2.0


@dataclass(frozen=True)
class DashboardSettings:
    """Dashboard behaviour."""

    sparkline_requests: int = 60
    log_lines: int = 2000
    demo_speed: float = 4.0


# Team user names: they key per-user state folders and metric labels, so only these characters.
USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
# The user of a request whose key matches no configured user (when require_user is false).
UNKNOWN_USER = "unknown"
KEY_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
TEAM_FILE = "team.toml"


@dataclass(frozen=True)
class TeamSettings:
    """Team mode: user names with the hashes of their keys (never the keys), and whether keys are required."""

    users: dict[str, str] = field(default_factory=dict)
    require_user: bool = False

    @property
    def enabled(self) -> bool:
        """Whether the proxy identifies users (some user configured, or keys required)."""
        return bool(self.users) or self.require_user


@dataclass(frozen=True)
class OtelSettings:
    """Optional OpenTelemetry trace export (OTLP over HTTP); off while endpoint is empty."""

    endpoint: str = ""
    headers_env: str = ""
    service_name: str = "ctxbudget"
    timeout: float = 10.0


@dataclass(frozen=True)
class ServeSettings:
    """`ctxbudget serve` defaults (its flags override each): where it listens, the proxy, TLS."""

    listen: str = "127.0.0.1:8788"
    proxy: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    insecure_http: bool = False


@dataclass(frozen=True)
class Settings:
    """All settings; every field has a default so an empty file is valid."""

    proxy: ProxySettings = field(default_factory=ProxySettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    anatomy: AnatomySettings = field(default_factory=AnatomySettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    compact: CompactSettings = field(default_factory=CompactSettings)
    transforms: TransformSettings = field(default_factory=TransformSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    gpu: GpuSettings = field(default_factory=GpuSettings)
    dashboard: DashboardSettings = field(default_factory=DashboardSettings)
    otel: OtelSettings = field(default_factory=OtelSettings)
    team: TeamSettings = field(default_factory=TeamSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    keys: dict[str, str] = field(default_factory=dict)
    source: str = "defaults"

    def journal_path(self) -> Path:
        """The journal file: the configured path or one in the user data dir."""
        if self.journal.path:
            return Path(self.journal.path).expanduser()
        return Path(platformdirs.user_data_dir(APP_NAME)) / "journal.sqlite3"


def config_dir() -> Path:
    """The per-user config folder (config.toml, team.toml, serve-token)."""
    return Path(platformdirs.user_config_dir(APP_NAME))


def user_config_path() -> Path:
    """The per-user config file location."""
    return config_dir() / "config.toml"


def serve_token_path() -> Path:
    """Where `ctxbudget serve` keeps its bearer token (also the single-user proxy key beyond loopback)."""
    return config_dir() / "serve-token"


def team_file_path() -> Path:
    """The file `ctxbudget team add` writes user key hashes to (0600, in the config dir)."""
    return config_dir() / TEAM_FILE


def find_config(explicit: str | None = None) -> Path | None:
    """Apply the lookup order: --config, $CTXBUDGET_CONFIG, ./config.toml, user config dir."""
    if explicit:
        return _given_file(Path(explicit).expanduser(), "--config")
    env = os.environ.get("CTXBUDGET_CONFIG")
    if env:
        return _given_file(Path(env).expanduser(), "CTXBUDGET_CONFIG")
    for candidate in (Path.cwd() / "config.toml", user_config_path()):
        if candidate.is_file():
            return candidate
    return None


def _given_file(path: Path, given_in: str) -> Path:
    if path.is_dir():
        raise ConfigError(
            f"{path}: is a directory (given in {given_in}); give the TOML file, e.g. {path / 'config.toml'}"
        )
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (given in {given_in}); check the path")
    return path


def load_settings(explicit: str | None = None) -> Settings:
    """Load settings following the lookup order; defaults when no file exists."""
    path = find_config(explicit)
    settings = Settings() if path is None else settings_from_dict(_read_toml(path), str(path))
    return with_team_file(settings)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax at that line") from exc
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: byte 0x{exc.object[exc.start]:02x} is not UTF-8; save the file as UTF-8"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc


def read_team_file(path: Path | None = None) -> dict[str, str]:
    """The users `ctxbudget team add` stored (name -> key hash); {} when the file does not exist.

    The file decides who may use the proxy, so one that others may write is refused.
    """
    path = path or team_file_path()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{path}: writable by other users; run `chmod 600 {path}`")
    data = _read_toml(path)
    team = data.get("team", {})
    if set(data) - {"team"} or not isinstance(team, dict) or set(team) - {"users"}:
        raise ConfigError(
            f"{path}: only [team] users belongs in this file; manage it with `ctxbudget team add/remove`"
        )
    return team_users(team.get("users", {}), str(path))


def with_team_file(settings: Settings, path: Path | None = None) -> Settings:
    """Settings with the team file's users added to [team] users (a name in both is an error)."""
    path = path or team_file_path()
    stored = read_team_file(path)
    if not stored:
        return settings
    both = sorted(set(stored) & set(settings.team.users))
    if both:
        raise ConfigError(
            f"{path}: [team] users {', '.join(both)} also in {settings.source}; keep each user in one file"
        )
    users = team_users({**settings.team.users, **stored}, f"{settings.source} and {path}")
    team = dataclasses.replace(settings.team, users=users)
    return dataclasses.replace(settings, team=team)


def team_users(value: Any, source: str) -> dict[str, str]:
    """[team] users checked: valid names mapped to "sha256:<hex>" hashes, each hash used once."""
    where = f"{source}: [team] users"
    if not isinstance(value, dict):
        raise ConfigError(f'{where}: expected a table such as {{alice = "sha256:..."}}, got {value!r}')
    seen: dict[str, str] = {}
    for name, digest in value.items():
        if not USER_NAME.match(name) or name == UNKNOWN_USER:
            raise ConfigError(
                f"{where}: {name!r} is not a valid user name; use letters, digits, - and _ "
                f"(at most 64, not {UNKNOWN_USER!r})"
            )
        if not isinstance(digest, str) or not KEY_HASH.match(digest):
            raise ConfigError(
                f'{where}.{name}: expected "sha256:<64 hex digits>", the hash of a key, never the key '
                f"itself; create one with `ctxbudget team add {name}`"
            )
        if digest in seen:
            raise ConfigError(
                f"{where}: {name} and {seen[digest]} have the same key hash; give each its own key"
            )
        seen[digest] = name
    return dict(value)


def settings_from_dict(data: dict[str, Any], source: str = "<dict>") -> Settings:
    """Build Settings from parsed TOML, rejecting unknown keys and wrong types."""
    kwargs: dict[str, Any] = {"source": source}
    hints = typing.get_type_hints(Settings)
    for section, value in data.items():
        if section == "source" or section not in hints:
            valid = ", ".join(f"[{f.name}]" for f in dataclasses.fields(Settings) if f.name != "source")
            raise ConfigError(f"{source}: unknown section [{section}]; valid sections: {valid}")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: [{section}] must be a table, got {type(value).__name__}")
        if section == "keys":
            for key, binding in value.items():
                if not isinstance(binding, str):
                    raise ConfigError(
                        f'{source}: [keys] {key}: expected a string such as "ctrl+r", got {binding!r}'
                    )
            kwargs["keys"] = dict(value)
            continue
        if section == "team":
            kwargs["team"] = _team_section(value, source)
            continue
        if section == "report":
            try:
                kwargs["report"] = report_settings_from_dict(value, source)
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc
            continue
        kwargs[section] = _build_section(hints[section], value, section, source)
    if "transforms" in kwargs:
        _validate_transforms(kwargs["transforms"], source)
    settings = Settings(**kwargs)
    check_values(settings, source)
    return settings


def _team_section(values: dict[str, Any], source: str) -> TeamSettings:
    rest = {k: v for k, v in values.items() if k != "users"}
    plain = _build_section(TeamSettings, rest, "team", source) if rest else TeamSettings()
    if "users" not in values:
        return plain
    return dataclasses.replace(plain, users=team_users(values["users"], source))


def check_values(settings: Settings, source: str, only: dict[str, set[str]] | None = None) -> None:
    """Apply the per-field checks of tui.core.settings_checks (`only`: section -> keys to check)."""
    from tui.core.settings_checks import field_checks

    for (section, key), check in field_checks(COUNTER_MODES).items():
        if only is not None and key not in only.get(section, ()):
            continue
        values = getattr(settings, section, None)
        if values is None or not hasattr(values, key):
            continue
        problem = check(getattr(values, key), values)
        if problem:
            raise ConfigError(f"{source}: [{section}] {key}: {problem}")


def _validate_transforms(transforms: TransformSettings, source: str) -> None:
    from tui.core.transforms.registry import validate_settings

    try:
        validate_settings(transforms)
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _build_section(cls: type, values: dict[str, Any], section: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in hints:
            valid = ", ".join(hints)
            raise ConfigError(f"{source}: [{section}] {key}: unknown key; valid keys: {valid}")
        out[key] = _check_type(value, hints[key], f"[{section}] {key}", source)
    return cls(**out)


def _check_type(value: Any, expected: Any, where: str, source: str) -> Any:
    origin = typing.get_origin(expected)
    if origin is list:
        (item_type,) = typing.get_args(expected)
        if not isinstance(value, list) or not all(isinstance(v, item_type) for v in value):
            raise ConfigError(
                f"{source}: {where}: expected a list of {item_type.__name__}, got {value!r}"
            )
        return list(value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{source}: {where}: unsupported type")  # not used by any field
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"{source}: {where}: expected int, got bool {value!r}")
    if not isinstance(value, expected):
        name = getattr(expected, "__name__", str(expected))
        raise ConfigError(
            f"{source}: {where}: expected {name}, got {type(value).__name__} {value!r}; "
            f"write it as a TOML {name}"
        )
    return value


def with_overrides(settings: Settings, section: str, **changes: Any) -> Settings:
    """Return a copy with CLI overrides applied to one section (only values that were given)."""
    given = {k: v for k, v in changes.items() if v is not None}
    if not given:
        return settings
    current = getattr(settings, section)
    changed = dataclasses.replace(settings, **{section: dataclasses.replace(current, **given)})
    check_values(changed, "command line", {section: set(given)})
    return changed
