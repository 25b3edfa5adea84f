"""Install coding agents and MCP servers from npm once (cached outside the repo); run them headless."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import platformdirs

CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
CLAUDE_CODE_VERSION = "2.1.197"
OPENCODE_PACKAGE = "opencode-ai"
OPENCODE_VERSION = "1.18.33"
MCP_FILESYSTEM_PACKAGE = "@modelcontextprotocol/server-filesystem"
MCP_FILESYSTEM_VERSION = "2026.8.31"
NPM_TIMEOUT_S = 600
_INSTALLED_MARKER = ".ctxbudget-installed"


class AgentSetupError(RuntimeError):
    """npm or node is missing, or an install did not produce what it should."""


def agents_cache_dir() -> Path:
    """Where npm installs of agents live: ``$CTXBUDGET_AGENTS_CACHE`` or ``<user cache>/ctxbudget/agents``."""
    root = os.environ.get("CTXBUDGET_AGENTS_CACHE")
    return Path(root) if root else Path(platformdirs.user_cache_dir("ctxbudget")) / "agents"


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise AgentSetupError(f"{tool} not found on PATH (the agent end-to-end tests need Node.js and npm)")
    return path


@contextlib.contextmanager
def _install_lock(root: Path) -> Iterator[None]:
    """One installer at a time across processes (parallel test sessions share the cache)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def npm_install(
    package: str, version: str, name: str, postinstall: Sequence[str] = ()
) -> Path:
    """``npm install package@version`` into ``<cache>/<name>-<version>`` once; return that prefix.

    Install scripts are skipped (npm 11 skips them anyway) and ``postinstall`` (paths relative to the
    package folder, run with node) is run by hand. The folder is built aside and renamed into place,
    so an interrupted install never looks finished.
    """
    root = agents_cache_dir()
    prefix = root / f"{name}-{version}"
    if (prefix / _INSTALLED_MARKER).is_file():
        return prefix
    npm = _require("npm")
    node = _require("node")
    with _install_lock(root):
        if (prefix / _INSTALLED_MARKER).is_file():
            return prefix
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            subprocess.run(
                [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--no-save",
                 "--ignore-scripts", "--loglevel=error", f"{package}@{version}"],
                check=True, capture_output=True, text=True, timeout=NPM_TIMEOUT_S,
            )
            package_dir = staging / "node_modules" / package
            for script in postinstall:
                subprocess.run(
                    [node, script], cwd=package_dir, check=True, capture_output=True, text=True,
                    timeout=NPM_TIMEOUT_S,
                )
            (staging / _INSTALLED_MARKER).write_text(f"{package}@{version}\n")
            if prefix.exists():
                shutil.rmtree(prefix)
            staging.rename(prefix)
        except subprocess.CalledProcessError as exc:
            raise AgentSetupError(
                f"installing {package}@{version} failed ({exc.cmd[0]} exit {exc.returncode}):\n"
                f"{(exc.stderr or '')[-2000:]}"
            ) from exc
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return prefix


def install_claude_code(version: str = CLAUDE_CODE_VERSION) -> Path:
    """The native ``claude`` binary of a pinned Claude Code release, installed once."""
    prefix = npm_install(CLAUDE_CODE_PACKAGE, version, "claude-code", postinstall=["install.cjs"])
    binary = prefix / "node_modules" / CLAUDE_CODE_PACKAGE / "bin" / "claude.exe"
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0 or version not in out.stdout:
        raise AgentSetupError(f"{binary} --version gave {out.returncode}: {out.stdout}{out.stderr}")
    return binary


def install_opencode(version: str = OPENCODE_VERSION) -> Path:
    """The native ``opencode`` binary of a pinned opencode release, installed once.

    npm installs the platform package (an optional dependency) with the wrapper; the wrapper's
    postinstall only links it, so the platform binary is run directly.
    """
    import platform

    prefix = npm_install(OPENCODE_PACKAGE, version, "opencode")
    arch = {"x86_64": "x64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    modules = prefix / "node_modules"
    candidates = [
        modules / f"opencode-linux-{arch}{suffix}" / "bin" / "opencode" for suffix in ("", "-baseline")
    ]
    for binary in candidates:
        if not binary.is_file():
            continue
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
        if out.returncode == 0 and version in out.stdout:
            return binary
    raise AgentSetupError(f"no working opencode {version} binary among {[str(c) for c in candidates]}")


def install_mcp_filesystem(version: str = MCP_FILESYSTEM_VERSION) -> Path:
    """The entry script of the reference filesystem MCP server (run it with node)."""
    prefix = npm_install(MCP_FILESYSTEM_PACKAGE, version, "mcp-server-filesystem")
    script = prefix / "node_modules" / MCP_FILESYSTEM_PACKAGE / "dist" / "index.js"
    if not script.is_file():
        raise AgentSetupError(f"{script} missing after install")
    return script


@dataclass(frozen=True)
class McpServerSpec:
    """How an agent starts one stdio MCP server."""

    name: str
    command: str
    args: tuple[str, ...]

    def config(self) -> dict[str, object]:
        """The ``mcpServers`` entry Claude Code reads from ``.mcp.json``."""
        return {"command": self.command, "args": list(self.args)}


def filesystem_mcp(script: Path, root: Path, name: str = "filesystem") -> McpServerSpec:
    """The filesystem MCP server confined to ``root``."""
    return McpServerSpec(name, _require("node"), (str(script), str(root)))


def resources_mcp(name: str = "notes") -> McpServerSpec:
    """A small stdio MCP server with resources (tests/support/resource_mcp.py), run by this Python."""
    return McpServerSpec(name, sys.executable, (str(Path(__file__).with_name("resource_mcp.py")),))


def list_mcp_tools(spec: McpServerSpec, timeout: float = 30.0) -> list[str]:
    """Ask an MCP server for its tool names over stdio (initialize, then tools/list)."""
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "ctxbudget-tests", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    with subprocess.Popen(
        [spec.command, *spec.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        for message in messages:
            proc.stdin.write(json.dumps(message) + "\n")
        proc.stdin.flush()
        try:
            for line in proc.stdout:
                reply = json.loads(line)
                if reply.get("id") == 2:
                    return [tool["name"] for tool in reply["result"]["tools"]]
        finally:
            proc.kill()
    raise AgentSetupError(f"MCP server {spec.name} closed stdout before answering tools/list")


@dataclass(frozen=True)
class ClaudeProject:
    """A scratch project folder and HOME for one headless Claude Code run."""

    root: Path
    home: Path


def make_claude_project(base: Path, mcp_servers: Sequence[McpServerSpec] = ()) -> ClaudeProject:
    """A project with a few files, project MCP servers enabled without prompts, and an empty HOME."""
    root = base / "project"
    home = base / "home"
    (root / ".claude").mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("# demo\n\nA tiny project for the end-to-end test.\n")
    (root / "main.py").write_text('print("hello")\n')
    servers = {spec.name: spec.config() for spec in mcp_servers}
    (root / ".mcp.json").write_text(json.dumps({"mcpServers": servers}, indent=2))
    (root / ".claude" / "settings.json").write_text(json.dumps({"enableAllProjectMcpServers": True}))
    return ClaudeProject(root=root, home=home)


def claude_env(
    base_url: str, home: Path, api_key: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A minimal environment: no user config, no telemetry or update checks, the API at ``base_url``."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    env.update(extra or {})
    return env


def run_claude_print(
    binary: Path,
    project: ClaudeProject,
    base_url: str,
    prompt: str,
    *,
    api_key: str = "sk-ant-test-dummy",
    model: str = "tiny",
    timeout: float = 240.0,
    extra_args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """``claude -p PROMPT --model MODEL`` in the project against ``base_url``; the finished process."""
    return subprocess.run(
        [str(binary), "-p", prompt, "--model", model, *extra_args],
        cwd=project.root, env=claude_env(base_url, project.home, api_key), capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


def make_opencode_project(
    base: Path,
    base_url: str,
    mcp_servers: Sequence[McpServerSpec] = (),
    context: int = 16384,
    output: int = 32,
) -> ClaudeProject:
    """A project whose opencode.json names one OpenAI-compatible provider at ``base_url`` (model
    ``llama/smollm2``) and the MCP servers as local ones; an empty HOME."""
    root = base / "project"
    home = base / "home"
    root.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    (root / "README.md").write_text("# demo\n\nA tiny project for the end-to-end test.\n")
    config = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": "llama/smollm2",
        "provider": {
            "llama": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "llama-server via ctxbudget",
                "options": {"baseURL": base_url.rstrip("/") + "/v1", "apiKey": "dummy"},
                "models": {"smollm2": {"name": "SmolLM2", "limit": {"context": context, "output": output}}},
            }
        },
        "mcp": {
            spec.name: {"type": "local", "command": [spec.command, *spec.args], "enabled": True}
            for spec in mcp_servers
        },
    }
    (root / "opencode.json").write_text(json.dumps(config, indent=2))
    return ClaudeProject(root=root, home=home)


def run_opencode(
    binary: Path, project: ClaudeProject, prompt: str, *, timeout: float = 600.0
) -> subprocess.CompletedProcess[str]:
    """``opencode run PROMPT`` in the project; the provider package opencode fetches is cached with it."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(project.home),
        "LANG": "C.UTF-8",
        "XDG_CACHE_HOME": str(agents_cache_dir() / "opencode-cache"),
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
    }
    return subprocess.run(
        [str(binary), "run", prompt],
        cwd=project.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
