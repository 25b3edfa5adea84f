"""The control API under /_ctxbudget/: switches, compaction and metrics, for loopback clients only."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tui.core.actions.compaction import CompactionError
from tui.core.actions.mcp_switch import switch_cost
from tui.core.prom import METRICS_PATH, metrics_route
from tui.core.redact import redact_text
from tui.core.transforms.pipeline import changes_prefix
from tui.core.transforms.registry import TRANSFORM_ORDER

if TYPE_CHECKING:
    from tui.core.actions.compaction import Compaction
    from tui.core.actions.compaction_service import CompactionService
    from tui.core.control.controls import ProxyControls

CONTROL_PREFIX = "/_ctxbudget/"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback(remote: str | None) -> bool:
    """Whether a peer address is this machine (unix sockets and unknown peers are not trusted)."""
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def from_browser_page(headers: Mapping[str, str]) -> bool:
    """Whether a request comes from a web page (an Origin header, or a fetch that is not same-origin)."""
    return bool(headers.get("Origin")) or headers.get("Sec-Fetch-Site", "none") not in ("none", "same-origin")


LISTEN_HOST: web.AppKey[str] = web.AppKey("ctxbudget_listen_host", str)


def host_names_this_machine(host_header: str | None, listen_host: str, local_host: str | None) -> bool:
    """Whether a Host header names this machine: a loopback name or address, or where the proxy listens.

    A DNS-rebinding page reaches 127.0.0.1 under its own name (Host: evil.example); refusing unknown
    names keeps such a page from reading or switching anything. No Host (HTTP/1.0) is no browser.
    """
    if not host_header:
        return True
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    host = host.rstrip(".")
    if host == "localhost" or host in (listen_host.lower(), (local_host or "").lower()):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@web.middleware
async def loopback_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse control paths to any peer but this machine, even when the proxy listens remotely."""
    # Metrics are read-only and hold no session ids or secrets; a remote scraper can only reach them
    # when the operator chose to listen beyond loopback (--allow-remote), which is what teams do.
    if request.method == "GET" and request.path == METRICS_PATH:
        return await handler(request)
    if request.path.startswith(CONTROL_PREFIX):
        if not is_loopback(request.remote):
            return error(403, "forbidden", "the ctxbudget control API only answers clients on this machine")
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        local_host = sockname[0] if isinstance(sockname, tuple) and sockname else None
        listen_host = request.app.get(LISTEN_HOST, "127.0.0.1")
        if not host_names_this_machine(request.headers.get("Host"), listen_host, local_host):
            return error(
                403,
                "forbidden",
                "the ctxbudget control API only answers Host: localhost, a loopback address or the listen "
                "address (this request may come from a DNS-rebinding web page)",
            )
        # A web page in the user's browser is a loopback peer too: refuse cross-site requests, and make
        # POST bodies must be JSON (_payload), which a page cannot send without a CORS preflight.
        if from_browser_page(request.headers):
            return error(403, "forbidden", "the ctxbudget control API does not answer browser pages")
    return await handler(request)


def error(status: int, kind: str, message: str) -> web.Response:
    """A JSON error answer."""
    return web.json_response({"error": message, "type": kind}, status=status)


def _bad_request(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=f'{{"error": "{message}"}}', content_type="application/json")


async def _payload(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text='{"error": "send the body as application/json"}', content_type="application/json"
        )
    try:
        data = await request.json()
    except ValueError as exc:
        raise _bad_request("body must be JSON") from exc
    if not isinstance(data, dict):
        raise _bad_request("body must be a JSON object")
    return data


class ControlApi:
    """Handlers bound to one proxy's controls."""

    def __init__(self, controls: ProxyControls) -> None:
        self.controls = controls
        self.tracker = controls.tracker

    def mount(self, app: web.Application) -> None:
        """Add every control route (before the proxy's catch-all)."""
        app.router.add_route("GET", CONTROL_PREFIX + "state", self.state)
        app.router.add_route("POST", CONTROL_PREFIX + "mcp", self.mcp)
        app.router.add_route("POST", CONTROL_PREFIX + "transforms", self.transforms)
        app.router.add_route("POST", CONTROL_PREFIX + "compact", self.compact)
        app.router.add_route("POST", CONTROL_PREFIX + "compact/undo", self.compact_undo)
        app.router.add_route("GET", METRICS_PATH, metrics_route(self.controls.metrics))

    def state_dict(self, user: str = "") -> dict[str, Any]:
        """Everything GET /_ctxbudget/state answers (MCP switches: those of `user`)."""
        controls, tracker = self.controls, self.tracker
        store = controls.mcp_store_for(user)
        off = store.off()
        seen = tracker.servers(user)
        names = list(dict.fromkeys([*controls.settings.anatomy.mcp_servers, *seen, *sorted(off)]))
        servers = [
            {
                "server": name,
                "enabled": name not in off,
                "tools": seen.get(name, {}).get("tools"),
                "tokens": seen.get(name, {}).get("tokens"),
            }
            for name in names
        ]
        enabled = controls.enabled_transforms()
        saved = tracker.savings
        transforms = [
            {
                "name": name,
                "enabled": name in enabled,
                "configured": name in controls.settings.transforms.enabled,
                "saved_tokens": saved.by_transform.get(name, 0),
            }
            for name in TRANSFORM_ORDER
        ]
        active = [
            {"user": owner, **_compaction_json(service, item)}
            for owner, service in controls.compaction_services()
            for item in service.store.all()
        ]
        return {
            "users": list(controls.users()),
            "mcp": {
                "user": user,
                "state_file": str(store.path),
                "servers": servers,
                "never_called": tracker.never_called(user),
                "saved_tokens": saved.mcp_tokens,
            },
            "transforms": {
                "state_file": str(controls.transform_switches.path),
                "enabled": list(enabled),
                "available": transforms,
                "saved_tokens": saved.transform_tokens,
                "overrides": controls.transform_switches.overrides(),
            },
            "compactions": {
                "active": active,
                "saved_tokens": saved.compaction_tokens,
            },
            "requests_seen": saved.requests,
        }

    def _user(self, value: Any) -> str | web.Response:
        """The user a control request names ("" when none), or the error answer for an unknown one."""
        if value is None:
            return ""
        if not isinstance(value, str) or not self.controls.known_user(value):
            names = ", ".join(repr(u) for u in self.controls.users())
            return error(404, "not_found", f"unknown user {value!r}; users: {names}")
        return value

    async def state(self, request: web.Request) -> web.Response:
        """GET state (?user=NAME: that user's MCP switches)."""
        user = self._user(request.query.get("user"))
        if isinstance(user, web.Response):
            return user
        return web.json_response(self.state_dict(user))

    async def mcp(self, request: web.Request) -> web.Response:
        """POST {"server", "enabled", "user"?}: switch an MCP server for one user (default: "")."""
        data = await _payload(request)
        server, enabled = data.get("server"), data.get("enabled")
        if not isinstance(server, str) or not server or not isinstance(enabled, bool):
            return error(400, "bad_request", 'send {"server": NAME, "enabled": true|false, "user": NAME?}')
        user = self._user(data.get("user"))
        if isinstance(user, web.Response):
            return user
        off = self.controls.mcp_store_for(user).set_enabled(server, enabled)
        latest = self.tracker.latest_of(user)
        cost = None
        if latest is not None and latest.anatomy is not None:
            cost = switch_cost(
                latest.anatomy, server, switching_on=enabled, server_prompt_tokens=latest.usage.prompt_tokens
            ).to_json()
        answer = {"server": server, "enabled": enabled, "user": user, "off": sorted(off), "cost": cost}
        return web.json_response(answer)

    async def transforms(self, request: web.Request) -> web.Response:
        """POST {"name", "enabled"}: switch a transform; says whether the next request re-processes."""
        data = await _payload(request)
        name, enabled = data.get("name"), data.get("enabled")
        if not isinstance(name, str) or not isinstance(enabled, bool):
            return error(400, "bad_request", 'send {"name": TRANSFORM, "enabled": true|false}')
        if name not in TRANSFORM_ORDER:
            return error(404, "not_found", f"unknown transform {name!r}; valid: {', '.join(TRANSFORM_ORDER)}")
        switches = self.controls.transform_switches
        before = switches.enabled()
        after = switches.set_enabled(name, enabled)
        answer: dict[str, Any] = {
            "name": name,
            "enabled": enabled,
            "enabled_now": list(after),
            "changed": before != after,
            "reprocess": None,
        }
        if before != after and self.controls.pipeline is not None:
            answer["reprocess"] = await asyncio.to_thread(_prefix_effect, self.controls, before, after)
        return web.json_response(answer)

    async def compact(self, request: web.Request) -> web.Response:
        """POST {"session", "keep_turns", "focus"?, "user"?}: summarise a session, rewrite its requests."""
        data = await _payload(request)
        user = self._user(data.get("user"))
        if isinstance(user, web.Response):
            return user
        compaction = self.controls.compaction_for(user)
        if compaction is None:
            return error(503, "unavailable", "proxy-mode compaction is not available in this proxy")
        session = data.get("session")
        keep = data.get("keep_turns", self.controls.settings.compact.keep_turns)
        focus = data.get("focus") or ""
        if (
            (session is not None and not isinstance(session, str))
            or not isinstance(keep, int)
            or not isinstance(focus, str)
        ):
            wanted = '{"session": ID or null, "keep_turns": N, "focus": TEXT?, "user": NAME?}'
            return error(400, "bad_request", f"send {wanted}")
        self.controls.replay_recent(user)
        await self.controls.ensure_compaction_counter()
        try:
            item = await compaction.compact(session or None, keep, focus=focus)
        except CompactionError as exc:
            return error(409, "cannot_compact", redact_text(str(exc)))
        except Exception as exc:  # the summary request failed upstream
            return error(502, "upstream_failed", redact_text(f"{type(exc).__name__}: {exc}"))
        # The folded turns stay in the state file and the journal; the answer gives their size only.
        answer = {k: v for k, v in item.to_json().items() if k != "folded"}
        answer["folded_bytes"] = len(item.folded.encode("utf-8"))
        return web.json_response(answer)

    async def compact_undo(self, request: web.Request) -> web.Response:
        """POST {"session", "user"?}: drop one user's compaction (the newest when session is null)."""
        data = await _payload(request)
        user = self._user(data.get("user"))
        if isinstance(user, web.Response):
            return user
        compaction = self.controls.compaction_for(user)
        if compaction is None:
            return error(503, "unavailable", "proxy-mode compaction is not available in this proxy")
        session = data.get("session")
        wanted = session if isinstance(session, str) and session else None
        items = compaction.store.all()
        item = next((c for c in items if c.session_id == wanted or wanted is None), None)
        undone = compaction.undo(wanted)
        if undone is None or item is None:
            return error(404, "not_found", f"no active compaction for session {session or '(any)'}")
        # What goes out again: the folded messages, as the client's bytes hold them.
        return web.json_response(
            {
                "session_id": undone,
                "folded_messages": len(item.prefix_hashes),
                "folded_bytes": len(item.folded.encode("utf-8")),
            }
        )


def _compaction_json(service: CompactionService, c: Compaction) -> dict[str, Any]:
    status, detail = service.store.status(c.session_id)
    return {
        "session_id": c.session_id,
        "dialect": c.dialect,
        "prefix_tokens": c.prefix_tokens,
        "summary_tokens": c.summary_tokens,
        "tokens_saved": c.tokens_saved,
        "keep_turns": c.keep_turns,
        "created": c.created,
        "rewritten_requests": service.store.rewritten.get(c.session_id, 0),
        "status": status,
        "detail": detail,
        "focus": c.focus,
        "folded_messages": len(c.prefix_hashes),
        "folded_bytes": len(c.folded.encode("utf-8")),
    }


def _prefix_effect(
    controls: ProxyControls, before: Sequence[str], after: Sequence[str]
) -> dict[str, Any] | None:
    """Whether switching from `before` to `after` changes the latest request's cached prefix."""
    latest = controls.latest_body()
    pipeline = controls.pipeline
    if latest is None or pipeline is None:
        return None
    body, dialect = latest
    old, _ = pipeline.run(body, dialect, before)
    new, _ = pipeline.run(body, dialect, after)
    change = changes_prefix(old, new)
    return {
        "reprocesses": bool(change and change.reprocesses),
        "where": change.where if change else None,
        "unchanged_chars": change.unchanged_chars if change else None,
    }
