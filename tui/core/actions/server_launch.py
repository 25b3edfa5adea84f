"""The llama-server command line built from settings, and the pid file that remembers what we started."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tui.core.actions.server_errors import ServerControlError
from tui.core.actions.state_files import data_dir, read_json, write_json_atomic
from tui.core.config import Settings

PID_FILE = "llama-server.pid.json"
LAST_FILE = "llama-server.last.json"
DEFAULT_PORT = 8080
DEFAULT_STOP_TIMEOUT = 10.0


def _opt(settings: Settings, name: str, default: Any) -> Any:
    """A [server] option that the config may not define yet."""
    return getattr(settings.server, name, default)


def host_port(settings: Settings) -> tuple[str, int]:
    """Host and port to listen on: [server] port, else the port of [server] url."""
    parts = urlsplit(settings.server.url if "//" in settings.server.url else f"http://{settings.server.url}")
    host = parts.hostname or "127.0.0.1"
    host = "127.0.0.1" if host == "localhost" else host
    port = int(_opt(settings, "port", 0) or 0) or parts.port or DEFAULT_PORT
    return host, port


def default_log_file() -> Path:
    """Where a server started by us logs when [server] log_file is not set."""
    return data_dir() / "llama-server.log"


@dataclass(frozen=True)
class LaunchPlan:
    """Everything needed to start llama-server; `args` never contain the API key (it goes by env)."""

    binary: Path
    model: str
    host: str
    port: int
    ctx_size: int
    parallel: int
    log_file: Path
    args: tuple[str, ...]
    api_key: str = field(default="", repr=False)

    @property
    def url(self) -> str:
        """Base URL the server will answer on."""
        return f"http://{self.host}:{self.port}"

    @property
    def command(self) -> str:
        """The command line as text, for messages."""
        return " ".join(self.args)


def resolve_binary(settings: Settings) -> Path:
    """[server] binary, or the one find_llama_server() finds (without building)."""
    configured = str(_opt(settings, "binary", "") or "")
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise ServerControlError(f"[server] binary = {configured!r} does not exist")
        return path
    from tui.core.llama_binary import LlamaBuildError, find_llama_server

    try:
        return find_llama_server(build=False)
    except LlamaBuildError as exc:
        raise ServerControlError(f"{exc}; or set [server] binary") from exc


def build_launch(
    settings: Settings,
    *,
    ctx_size: int | None = None,
    parallel: int | None = None,
    binary: Path | None = None,
) -> LaunchPlan:
    """The launch for the configured settings, with optional ctx_size/parallel overrides."""
    server = settings.server
    if not server.model:
        raise ServerControlError("no model to start: set [server] model to a GGUF path")
    exe = binary or resolve_binary(settings)
    host, port = host_port(settings)
    ctx = server.ctx_size if ctx_size is None else ctx_size
    par = server.parallel if parallel is None else parallel
    log_file = Path(server.log_file).expanduser() if server.log_file else default_log_file()
    args = [str(exe), "-m", str(Path(server.model).expanduser()), "--host", host, "--port", str(port)]
    if ctx > 0:
        args += ["-c", str(ctx)]
    if par > 0:
        args += ["-np", str(par)]
    # "auto" is the server's default for both; leaving it out keeps older builds happy.
    if server.flash_attn and server.flash_attn != "auto":
        args += ["-fa", server.flash_attn]
    if server.n_gpu_layers and server.n_gpu_layers != "auto":
        args += ["-ngl", server.n_gpu_layers]
    if server.cache_type_k and server.cache_type_k != "f16":
        args += ["-ctk", server.cache_type_k]
    if server.cache_type_v and server.cache_type_v != "f16":
        args += ["-ctv", server.cache_type_v]
    args.append("--jinja" if bool(_opt(settings, "jinja", True)) else "--no-jinja")
    args += ["--log-file", str(log_file), "--log-colors", "off", "-lv", "4", "--metrics"]
    extra = [str(a) for a in _opt(settings, "extra_args", []) or []]
    from tui.core.actions.slot_cache import SLOT_SAVE_FLAG, flag_value, slot_save_dir

    if flag_value(extra, SLOT_SAVE_FLAG) is None:  # lets a restart keep the prompt cache
        args += [SLOT_SAVE_FLAG, str(slot_save_dir())]
    args += extra
    return LaunchPlan(exe, server.model, host, port, ctx, par, log_file, tuple(args), server.api_key)


def stop_timeout(settings: Settings) -> float:
    """Seconds between SIGTERM and SIGKILL ([server] stop_timeout)."""
    return float(_opt(settings, "stop_timeout", DEFAULT_STOP_TIMEOUT) or DEFAULT_STOP_TIMEOUT)


@dataclass(frozen=True)
class PidRecord:
    """What the pid file says about the server we started."""

    pid: int
    start_time: int | None
    port: int
    host: str
    model: str
    ctx_size: int
    parallel: int
    log_file: str
    command: str
    started: float

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PidRecord:
        """Rebuild from `to_json` output."""
        return cls(
            pid=int(data["pid"]),
            start_time=data.get("start_time"),
            port=int(data["port"]),
            host=str(data.get("host", "127.0.0.1")),
            model=str(data.get("model", "")),
            ctx_size=int(data.get("ctx_size", 0)),
            parallel=int(data.get("parallel", 0)),
            log_file=str(data.get("log_file", "")),
            command=str(data.get("command", "")),
            started=float(data.get("started", 0.0)),
        )


def pid_path() -> Path:
    """The pid file in the user data dir."""
    return data_dir() / PID_FILE


def read_pid_record(path: Path | None = None) -> PidRecord | None:
    """The pid record, None when missing or unreadable."""
    data = read_json(path or pid_path())
    if not isinstance(data, dict):
        return None
    try:
        return PidRecord.from_json(data)
    except (KeyError, TypeError, ValueError):
        return None


def write_pid_record(record: PidRecord, path: Path | None = None) -> None:
    """Persist the pid record."""
    write_json_atomic(path or pid_path(), record.to_json())


def clear_pid_record(path: Path | None = None) -> None:
    """Forget the server we started."""
    (path or pid_path()).unlink(missing_ok=True)


def record_outcome(phase: str, message: str, error_lines: tuple[str, ...] = ()) -> None:
    """Remember how the last start ended, so `status` in another process can tell."""
    write_json_atomic(
        data_dir() / LAST_FILE,
        {"phase": phase, "message": message, "error_lines": list(error_lines), "ts": time.time()},
    )


def last_outcome() -> dict[str, Any] | None:
    """How the last start ended (phase, message, error_lines, ts), if known."""
    data = read_json(data_dir() / LAST_FILE)
    return data if isinstance(data, dict) else None
