"""Team mode: `ctxbudget team`, the key gate of a real proxy subprocess, beyond-loopback keys, config."""

from __future__ import annotations

import os
import secrets
import socket
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.eventually import eventually_sync
from support.llama import RunningServer
from support.proxy_process import ProxyStartError, start_proxy
from support.relay import relay_to

from tui.core.config import ConfigError, config_dir, settings_from_dict, team_file_path
from tui.core.journal.reader import JournalReader
from tui.core.team.keys import hash_key


def ctxbudget(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command line as a user runs it (a real subprocess)."""
    return subprocess.run(
        [sys.executable, "-m", "tui", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_team_add_stores_only_a_hash_in_a_private_file() -> None:
    added = ctxbudget("team", "add", "alice")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith("ctxb-") and len(key) > 40
    assert "shown only this once" in added.stderr and key not in added.stderr
    path = team_file_path()
    text = path.read_text()
    assert key not in text and hash_key(key) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    assert ctxbudget("team", "add", "bob").returncode == 0
    listed = ctxbudget("team", "list")
    assert listed.returncode == 0 and listed.stdout.split() == ["alice", "bob"]
    assert "sha256" not in listed.stdout
    again = ctxbudget("team", "add", "alice")
    assert again.returncode == 1 and "already exists" in again.stderr and again.stdout == ""
    assert ctxbudget("team", "remove", "bob").returncode == 0
    assert ctxbudget("team", "list").stdout.split() == ["alice"]
    assert ctxbudget("team", "remove", "bob").returncode == 1
    for bad in ("../etc", "unknown", ""):
        assert ctxbudget("team", "add", bad).returncode == 2


def test_team_config_errors_name_the_file_the_key_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[team\] users.alice: .*never the key itself.*team add alice"):
        settings_from_dict({"team": {"users": {"alice": "ctxb-the-key-itself"}}}, "c.toml")
    with pytest.raises(ConfigError, match="not a valid user name"):
        settings_from_dict({"team": {"users": {"a b": "sha256:" + "0" * 64}}}, "c.toml")
    with pytest.raises(ConfigError, match="same key hash"):
        settings_from_dict({"team": {"users": {"a": "sha256:" + "0" * 64, "b": "sha256:" + "0" * 64}}})
    with pytest.raises(ConfigError, match=r"\[team\] require_user: expected bool"):
        settings_from_dict({"team": {"require_user": "yes"}})
    team = settings_from_dict({"team": {"users": {"a": "sha256:" + "1" * 64}, "require_user": True}}).team
    assert team.users == {"a": "sha256:" + "1" * 64} and team.require_user and team.enabled

    # A team file others may write is refused (it decides who may use the proxy): exit 2, named.
    assert ctxbudget("team", "add", "carol").returncode == 0
    team_file_path().chmod(0o622)
    listed = ctxbudget("team", "list")
    assert listed.returncode == 2 and str(team_file_path()) in listed.stderr and "chmod 600" in listed.stderr


def test_unknown_keys_are_recorded_as_unknown_without_require_user(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    key = ctxbudget("team", "add", "alice").stdout.strip()
    assert ctxbudget("team", "add", "bob").returncode == 0  # a team stays a team when alice leaves
    with relay_to(shared_llama_server.url) as upstream:
        proxy = start_proxy(upstream.url, tmp_path / "proxy")
        try:
            ok = httpx.get(proxy.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            other = httpx.get(proxy.url + "/v1/models", headers={"x-api-key": "sk-someone"}, timeout=30)
            assert ok.status_code == other.status_code == 200
            reader = JournalReader(proxy.journal_path)
            rows = eventually_sync(lambda: len(reader.latest(10)) == 2 and reader.latest(10), what="2 rows")
            reader.close()
            # Removing the user locks the key out within a second, without a restart (journaled unknown).
            assert ctxbudget("team", "remove", "alice").returncode == 0
            eventually_sync(
                lambda: httpx.get(
                    proxy.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30
                ).status_code == 200 and JournalReader(proxy.journal_path).latest(1)[0].user == "unknown",
                what="the removed key recorded as unknown", timeout=10,
            )  # fmt: skip
        finally:
            assert proxy.stop() == 0
    assert [r.user for r in rows] == ["alice", "unknown"]
    assert "user alice" in proxy.output() and "user unknown" in proxy.output()  # its line per request
    for seen in upstream.seen:
        assert key not in repr(seen.headers) and "sk-someone" not in repr(seen.headers)


def test_beyond_loopback_every_request_needs_a_known_key(
    shared_llama_server: RunningServer, tmp_path: Path
) -> None:
    # No user and no serve token: the proxy refuses to start rather than accept no one (or anyone).
    with pytest.raises(ProxyStartError, match="would accept no key"):
        start_proxy(
            shared_llama_server.url, tmp_path / "none", host="0.0.0.0", extra_args=("--allow-remote",)
        )

    token = "tok-" + secrets.token_hex(16)  # what `ctxbudget serve` keeps in <config dir>/serve-token
    config_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    (config_dir() / "serve-token").write_text(token + "\n")
    key = ctxbudget("team", "add", "bob").stdout.strip()
    with relay_to(shared_llama_server.url) as upstream:
        proxy = start_proxy(upstream.url, tmp_path / "proxy", host="0.0.0.0", extra_args=("--allow-remote",))
        try:
            models = proxy.url + "/v1/models"
            bare = httpx.get(models, timeout=30)
            wrong = httpx.get(models, headers={"Authorization": "Bearer nope"}, timeout=30)
            as_bob = httpx.get(models, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            as_owner = httpx.get(models, headers={"x-api-key": token}, timeout=30)
            health = proxy.health()
        finally:
            assert proxy.stop() == 0
    assert bare.status_code == wrong.status_code == 401
    assert bare.json()["error"]["code"] == "invalid_api_key"  # the OpenAI dialect for /v1/models
    assert "nope" not in wrong.text
    assert as_bob.status_code == as_owner.status_code == 200
    assert health["unauthorized"] == 2
    assert len(upstream.seen) == 2  # the two refused requests never left the proxy
    for seen in upstream.seen:
        assert seen.header("Authorization") is None and seen.header("x-api-key") is None
    rows = JournalReader(proxy.journal_path).latest(10)
    assert sorted(r.user for r in rows) == ["", "bob", "unknown", "unknown"]


def this_machines_address() -> str:
    """A non-loopback IPv4 address of this machine (the one its default route leaves from)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.254", 9))  # no packet is sent: this only picks the outgoing address
        address = str(probe.getsockname()[0])
    finally:
        probe.close()
    assert not address.startswith("127."), "this test needs a network interface besides loopback"
    return address


def test_metrics_from_another_machine_need_a_key(shared_llama_server: RunningServer, tmp_path: Path) -> None:
    key = ctxbudget("team", "add", "carol").stdout.strip()
    proxy = start_proxy(
        shared_llama_server.url, tmp_path / "proxy", host="0.0.0.0", extra_args=("--allow-remote",)
    )
    try:
        outside = f"http://{this_machines_address()}:{proxy.port}"
        metrics = outside + "/_ctxbudget/metrics"
        refused = httpx.get(metrics, timeout=30, trust_env=False)
        scraped = httpx.get(metrics, headers={"Authorization": f"Bearer {key}"}, timeout=30, trust_env=False)
        state = httpx.get(
            outside + "/_ctxbudget/state", headers={"x-api-key": key}, timeout=30, trust_env=False
        )
        forwarded = httpx.get(outside + "/v1/models", timeout=30, trust_env=False)
        local = httpx.get(proxy.url + "/_ctxbudget/metrics", timeout=30, trust_env=False)
    finally:
        assert proxy.stop() == 0
    assert refused.status_code == 401 and "ctxbudget_" not in refused.text
    assert scraped.status_code == 200 and "ctxbudget_requests_total" in scraped.text
    assert state.status_code == 403  # a key opens the metrics, never the control API from outside
    assert forwarded.status_code == 401
    assert local.status_code == 200  # this machine's own scraper (loopback peer) needs none
