"""`ctxbudget compact` in both modes: a real tmux pane, and the control API backed by CompactionService."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import libtmux
import pytest
from support.llama import RunningServer
from test_actions_compaction import BODIES, follow_up
from test_actions_tmux import stand_in, wait_for

from tui.commands import compact_cmd
from tui.core.actions.compaction import CompactionStore
from tui.core.actions.compaction_service import CompactionService
from tui.core.config import ProxySettings, Settings
from tui.core.tokens import ServerCounter


def args(**given: object) -> argparse.Namespace:
    base = {
        "mode": None, "session": None, "keep_turns": None, "pane": None, "socket": None, "undo": False,
        "user": None,
    }
    return argparse.Namespace(**{**base, "json": False, **given})


def control_server(service: CompactionService) -> ThreadingHTTPServer:
    """The control endpoints as the proxy exposes them, backed by the real service."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            try:
                if self.path == compact_cmd.CONTROL_PATH:
                    item = asyncio.run(service.compact(payload.get("session"), int(payload["keep_turns"])))
                    status, data = 200, item.to_json()
                elif self.path == compact_cmd.CONTROL_PATH + "/undo":
                    undone = service.undo(payload.get("session"))
                    status, data = (200, {"session_id": undone}) if undone else (404, {"error": "none"})
                else:
                    status, data = 404, {"error": "unknown path"}
            except Exception as exc:  # the endpoint reports errors as JSON, like the proxy does
                status, data = 409, {"error": str(exc)}
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_proxy_mode_round_trip(
    shared_llama_server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    counter = ServerCounter(shared_llama_server.url)
    service = CompactionService(
        CompactionStore(tmp_path / "c.json"), upstream=shared_llama_server.url, counter=counter, max_tokens=64
    )
    body = BODIES["anthropic"](3)
    assert not service.observe(body, "anthropic").applied
    server = control_server(service)
    try:
        settings = Settings(proxy=ProxySettings(listen=f"127.0.0.1:{server.server_address[1]}"))
        assert compact_cmd.run_compact(args(mode="proxy", keep_turns=1), settings) == 0
        out = capsys.readouterr().out
        assert "summary" in out and "saves" in out

        nxt = follow_up(body, "anthropic")
        rewritten = service.observe(nxt, "anthropic")
        assert rewritten.applied and rewritten.tokens_saved > 0
        with shared_llama_server.client() as client:
            answer = client.post("/v1/messages", json={**rewritten.body, "max_tokens": 4})
        assert answer.status_code == 200, answer.text

        assert compact_cmd.run_compact(args(mode="proxy", undo=True), settings) == 0
        assert not service.observe(nxt, "anthropic").applied
        assert compact_cmd.run_compact(args(mode="proxy", keep_turns=9), settings) == 1
        assert "nothing to compact" in capsys.readouterr().err
    finally:
        server.shutdown()


def test_proxy_mode_says_when_the_proxy_does_not_answer(capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
        port = probe.server_address[1]  # bound and closed again below: nothing listens there afterwards
    settings = Settings(proxy=ProxySettings(listen=f"127.0.0.1:{port}"))
    assert compact_cmd.run_compact(args(mode="proxy"), settings) == 1
    assert "does not answer" in capsys.readouterr().err
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"http://127.0.0.1:{port}/_ctxbudget/compact", json={}, timeout=2)


@pytest.fixture
def tmux() -> Iterator[libtmux.Server]:
    server = libtmux.Server(socket_name=f"test-{uuid.uuid4().hex[:12]}")
    yield server
    if server.is_alive():
        server.kill()


def test_pane_mode_types_compact(
    tmux: libtmux.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script, record = stand_in(tmp_path / "agent")
    tmux.new_session("agent", window_command=str(script), attach=False)
    wait_for(record, "ready")
    assert compact_cmd.run_compact(args(mode="pane", socket=tmux.socket_name), Settings()) == 0
    assert "sent /compact" in capsys.readouterr().out
    wait_for(record, "/compact")
    time.sleep(0.1)
    assert record.read_text().splitlines()[-1] == "/compact"


class _IPv6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def test_undo_alone_reaches_an_ipv6_proxy_in_the_default_pane_mode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            seen.append(self.path)
            raw = json.dumps({"session_id": "s-1"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = _IPv6Server(("::1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = Settings(proxy=ProxySettings(listen=f"[::1]:{server.server_address[1]}"))
        assert settings.compact.mode == "pane"
        assert compact_cmd.run_compact(args(undo=True), settings) == 0
        assert "compaction of session s-1 undone" in capsys.readouterr().out
        assert seen == [compact_cmd.CONTROL_PATH + "/undo"]
        assert compact_cmd.run_compact(args(mode="pane", undo=True), settings) == 2
    finally:
        server.shutdown()


def test_pane_mode_types_compact_with_the_focus(
    tmux: libtmux.Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script, record = stand_in(tmp_path / "agent")
    tmux.new_session("agent", window_command=str(script), attach=False)
    wait_for(record, "ready")
    given = args(mode="pane", socket=tmux.socket_name, focus="the auth\nbug", json=True)
    assert compact_cmd.run_compact(given, Settings()) == 0
    assert json.loads(capsys.readouterr().out)["command"] == "/compact the auth bug"  # one line
    assert wait_for(record, "auth").splitlines()[-1] == "/compact the auth bug"
