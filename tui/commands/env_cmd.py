"""`ctxbudget env`: the shell exports or config that route a coding agent through the proxy."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui.commands.connect_opts import TOKEN_ENV, add_connect_options, remote_from_args
from tui.core.config import Settings, with_overrides
from tui.core.redact import redact_text, redact_url

CLIENTS = ("claude", "opencode")
PROBE_TIMEOUT_S = 3.0
OUTPUT_RESERVE_MAX = 4096
# With --connect the agent's key is a reference to the token that the shell / opencode expands.
TOKEN_REF = f"${TOKEN_ENV}"


@dataclass(frozen=True)
class UpstreamFacts:
    """What the upstream says about itself (None fields when it could not be asked)."""

    n_ctx: int | None = None
    model: str | None = None
    error: str | None = None
    n_predict: int | None = None  # the server's -n (None or <= 0: unlimited)


def model_id(raw: str | None) -> str | None:
    """A model id an agent can show: llama-server names a model by its GGUF path unless given --alias."""
    if not raw:
        return None
    name = Path(raw).name if "/" in raw or raw.endswith(".gguf") else raw
    return name.removesuffix(".gguf") or None


def register(subparsers: Any, root_parser: argparse.ArgumentParser) -> None:
    """Add the `env` subcommand."""
    parser = subparsers.add_parser(
        "env",
        help="print what routes an agent through the proxy",
        description=(
            "Print shell exports (claude) or a config snippet (opencode) that send the agent's traffic "
            "through the proxy, with its context window set to the server's real per-slot n_ctx. "
            'Use: eval "$(ctxbudget env)".'
        ),
    )
    parser.add_argument("--client", choices=CLIENTS, default=None, help="agent (default: agent.client)")
    parser.add_argument("--listen", metavar="HOST:PORT", help="proxy address (default: proxy.listen)")
    parser.add_argument("--upstream", metavar="URL", help="llama-server URL (default: proxy.upstream)")
    parser.add_argument(
        "--reveal-key", action="store_true", help="print the server API key ([server] api_key) in the output"
    )
    parser.add_argument(
        "--statusline", action="store_true", help="print the Claude Code settings.json statusLine snippet"
    )
    add_connect_options(parser)
    parser.set_defaults(func=run_env)


def probe_upstream(url: str, api_key: str, timeout: float = PROBE_TIMEOUT_S) -> UpstreamFacts:
    """Ask /props for the per-slot n_ctx and /v1/models for the model id."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=timeout, trust_env=False) as client:
            props = client.get("/props")
            props.raise_for_status()
            data = props.json()
            settings = data.get("default_generation_settings", {})
            n_ctx = settings.get("n_ctx")
            n_predict = (settings.get("params") or {}).get("n_predict", settings.get("n_predict"))
            model = None
            try:
                models = client.get("/v1/models").json().get("data") or []
                model = models[0].get("id") if models else None
            except (httpx.HTTPError, ValueError, AttributeError):
                pass
            if not model and data.get("model_alias"):
                model = str(data["model_alias"])
    except httpx.HTTPStatusError as exc:
        return UpstreamFacts(error=f"{redact_url(url)}/props answered HTTP {exc.response.status_code}")
    except (httpx.HTTPError, ValueError) as exc:
        return UpstreamFacts(error=redact_text(f"{url} is not reachable ({type(exc).__name__}: {exc})"))
    return UpstreamFacts(
        n_ctx=int(n_ctx) if isinstance(n_ctx, int) else None,
        model=model_id(model),
        n_predict=int(n_predict) if isinstance(n_predict, int) else None,
    )


def context_window(facts: UpstreamFacts, settings: Settings) -> tuple[int | None, str]:
    """The window to tell the agent, and where it came from."""
    if facts.n_ctx:
        return facts.n_ctx, "the server's per-slot n_ctx from /props"
    if settings.agent.context_window > 0:
        return settings.agent.context_window, "[agent] context_window (server not reachable)"
    return None, "unknown"


def output_limit(window: int, facts: UpstreamFacts) -> int:
    """Tokens the agent reserves for an answer: the server's -n when set, else 1/8 of the window (<= 4,096).

    The agent subtracts this from the context before it compacts, so a large reserve wastes a small window.
    """
    if facts.n_predict and facts.n_predict > 0:
        return min(facts.n_predict, window // 2)
    return max(min(OUTPUT_RESERVE_MAX, window // 8), 256)


def first_request_warning(window: int | None, settings: Settings, client: str) -> str | None:
    """A warning when the window is smaller than the agent's smallest request (every request would fail)."""
    from tui.core.doctor.agent_need import agent_min_request

    need = agent_min_request(settings.journal_path(), client)
    if window is None or need.tokens is None or need.tokens <= window:
        return None
    return (
        f"warning: the server's per-slot context ({window:,} tokens) is smaller than the agent's smallest "
        f"request ({need.tokens:,} tokens, {need.source}): every request will fail; "
        "run `ctxbudget doctor` for the fix"
    )


def claude_exports(
    base_url: str,
    api_key: str,
    window: int | None,
    source: str,
    facts: UpstreamFacts,
    upstream: str,
    warning: str | None = None,
) -> str:
    """Shell lines for Claude Code."""
    shown = redact_url(upstream)
    lines = [f"# ctxbudget: route Claude Code through the proxy at {base_url} (upstream {shown})"]
    if facts.error:
        lines.append(f"# warning: {facts.error}; start llama-server and rerun for its real context size")
    if warning:
        lines.append(f"# {warning}")
    lines += [
        f"export ANTHROPIC_BASE_URL={shlex.quote(base_url)}",
        f"export ANTHROPIC_API_KEY={shell_value(api_key)}",
        "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
        "export DISABLE_TELEMETRY=1",
    ]
    if window:
        lines.append(f"# context window = {window} tokens ({source})")
        lines.append(f"export CLAUDE_CODE_MAX_CONTEXT_TOKENS={window}")
        lines.append(f"export CLAUDE_CODE_AUTO_COMPACT_WINDOW={window}")
    else:
        lines.append("# context window unknown: set [agent] context_window or start the server, then rerun")
    return "\n".join(lines)


def opencode_config(
    base_url: str, api_key: str, window: int | None, facts: UpstreamFacts
) -> dict[str, Any]:
    """An opencode config using the @ai-sdk/openai-compatible provider through the proxy."""
    model_id = facts.model or "local"
    entry: dict[str, Any] = {"name": model_id}
    if window:
        entry["limit"] = {"context": window, "output": output_limit(window, facts)}
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "ctxbudget": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "llama-server via ctxbudget",
                "options": {"baseURL": f"{base_url}/v1", "apiKey": opencode_value(api_key)},
                "models": {model_id: entry},
            }
        },
        "model": f"ctxbudget/{model_id}",
    }


def shell_value(value: str) -> str:
    """A shell word: the token reference stays expandable, anything else is quoted."""
    return f'"{TOKEN_REF}"' if value == TOKEN_REF else shlex.quote(value)


def opencode_value(value: str) -> str:
    """opencode's form of the token reference ({env:NAME})."""
    return f"{{env:{TOKEN_ENV}}}" if value == TOKEN_REF else value


def run_env_remote(args: argparse.Namespace, settings: Settings) -> int:
    """`env --connect URL`: settings for the proxy that `serve --proxy` runs on the GPU box."""
    from tui.core.serve.remote_source import RemoteError

    remote = remote_from_args(args)
    assert remote is not None
    try:
        info = remote.info()
    except RemoteError as exc:
        print(f"ctxbudget env: {exc}", file=sys.stderr)
        return 1
    base_url = str(info.get("proxy_url") or "").rstrip("/")
    if not base_url:
        print(
            f"ctxbudget env: the serve at {remote.url} runs no proxy: start it with "
            "`ctxbudget serve --proxy` (and [proxy] listen beyond loopback, or an SSH tunnel to it)",
            file=sys.stderr,
        )
        return 1
    from urllib.parse import urlsplit

    from tui.core.proxy.address import host_is_loopback

    proxy_host, serve_host = urlsplit(base_url).hostname or "", urlsplit(remote.url).hostname or ""
    if host_is_loopback(proxy_host) and not host_is_loopback(serve_host):
        print(
            f"# warning: the proxy on {serve_host} listens on its loopback ({base_url}): start serve with "
            "--proxy-listen 0.0.0.0:PORT --allow-remote, or tunnel that port (ssh -L)",
            file=sys.stderr,
        )
    facts = UpstreamFacts(n_ctx=info.get("n_ctx_slot"), model=model_id(info.get("model")))
    window, source = context_window(facts, settings)
    if facts.n_ctx:
        source = f"the server's per-slot n_ctx, from {remote.url}"
    upstream = str(info.get("server_url") or "")
    if (args.client or settings.agent.client) == "opencode":
        print(json.dumps(opencode_config(base_url, TOKEN_REF, window, facts), indent=2))
        print(f"# the apiKey reads ${TOKEN_ENV} from the environment (export it first)", file=sys.stderr)
        return 0
    print(claude_exports(base_url, TOKEN_REF, window, source, facts, upstream))
    print(f"# ANTHROPIC_API_KEY expands ${TOKEN_ENV} (export it first; it is never printed)")
    return 0


def run_env(args: argparse.Namespace, settings: Settings) -> int:
    """Handler for `ctxbudget env`."""
    from tui.core.proxy.address import parse_listen

    if getattr(args, "connect", None):
        return run_env_remote(args, settings)

    settings = with_overrides(settings, "proxy", listen=args.listen, upstream=args.upstream)
    if args.statusline:
        from tui.commands.statusline_cmd import settings_snippet

        print(json.dumps(settings_snippet(settings), indent=2))
        return 0
    address = parse_listen(settings.proxy.listen, allow_remote=True)
    base_url = address.url()
    upstream = settings.proxy.upstream.rstrip("/")
    facts = probe_upstream(upstream, settings.server.api_key)
    window, source = context_window(facts, settings)
    server_key = settings.server.api_key
    if not server_key:
        api_key = "dummy"
    else:
        api_key = server_key if args.reveal_key else "REPLACE_WITH_SERVER_KEY"
    client = args.client or settings.agent.client
    if server_key and not args.reveal_key:
        print(
            "# the server has an API key ([server] api_key): rerun with --reveal-key to include it",
            file=sys.stderr,
        )
    warning = first_request_warning(window, settings, client)
    if client == "opencode":
        if facts.error:
            limit = f"context limit from {source}" if window else "no limit: set [agent] context_window"
            print(f"# warning: {facts.error}; {limit}", file=sys.stderr)
        if warning:
            print(f"# {warning}", file=sys.stderr)
        print(json.dumps(opencode_config(base_url, api_key, window, facts), indent=2))
        print(
            "# save it as opencode.json (or point OPENCODE_CONFIG at it); "
            "also export OPENCODE_DISABLE_MODELS_FETCH=1",
            file=sys.stderr,
        )
        return 0
    print(claude_exports(base_url, api_key, window, source, facts, upstream, warning))
    return 0
