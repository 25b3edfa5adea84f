"""serve's security: the token file, 401 with no data, TLS with a self-signed cert, loopback rules."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from support.eventually import eventually_sync
from support.llama import free_port
from support.serve_process import ServeProcess, ctxbudget_cmd, start_serve

from tui.core.serve.auth import token_path

pytestmark = [pytest.mark.timeout(120)]

PATHS = ("info", "feed", "rows?last=5", "records/1", "server", "doctor", "state")


def self_signed(workdir: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl CLI."""
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=ctxbudget-test", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def empty_config(workdir: Path) -> Path:
    config = workdir / "config.toml"
    config.write_text(f'[journal]\npath = "{workdir / "journal.sqlite3"}"\n')
    return config


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ctxbudget_cmd(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_show_token_and_file_modes(tmp_path: Path) -> None:
    shown = run_cli("serve", "--show-token")
    assert shown.returncode == 0, shown.stderr
    path = token_path()
    assert shown.stdout.strip() == path.read_text().strip() and len(shown.stdout.strip()) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    again = run_cli("serve", "--show-token")
    assert again.stdout == shown.stdout  # made once, then kept
    path.chmod(0o644)
    refused = run_cli("serve", "--show-token")
    assert (
        refused.returncode == 2
        and "chmod 600" in refused.stderr
        and shown.stdout.strip() not in refused.stderr
    )


def test_beyond_loopback_needs_tls_or_insecure_http(tmp_path: Path) -> None:
    out = run_cli("--config", str(empty_config(tmp_path)), "serve", "--listen", f"0.0.0.0:{free_port()}")
    assert out.returncode == 2 and "--tls-cert" in out.stderr and "SSH tunnel" in out.stderr


def test_serve_section_of_the_config_gives_the_defaults_and_flags_override_them(tmp_path: Path) -> None:
    """A `[serve]` section (say, for a service unit) gives listen, TLS and proxy without flags."""
    cert, key = self_signed(tmp_path)
    port, proxy_port = free_port(), free_port()
    config = empty_config(tmp_path)
    config.write_text(
        config.read_text()
        + f'[proxy]\nlisten = "127.0.0.1:{proxy_port}"\n'
        + f'[serve]\nlisten = "0.0.0.0:{port}"\nproxy = true\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
    )
    serve = start_serve(config, tmp_path, listen_flag=False, port=port)
    try:
        assert serve.url == f"https://0.0.0.0:{port}"
        ca = ssl.create_default_context(cafile=str(cert))
        token = token_path().read_text().strip()
        info = httpx.get(
            f"https://127.0.0.1:{port}/_ctxbudget/info",
            headers={"Authorization": f"Bearer {token}"}, verify=ca, trust_env=False,
        )  # fmt: skip
        assert info.status_code == 200

        def proxy_up() -> bool:
            try:
                url = f"http://127.0.0.1:{proxy_port}/_ctxbudget/health"
                return httpx.get(url, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        eventually_sync(proxy_up, what="the proxy [serve] proxy = true starts", seen=serve.output)
    finally:
        serve.stop()
    # A flag overrides the section: plain loopback HTTP without the proxy.
    loopback = start_serve(config, tmp_path, "--tls-cert", "", "--tls-key", "")
    try:
        assert loopback.url.startswith("http://127.0.0.1:")
    finally:
        loopback.stop()


def test_a_wrong_serve_section_is_one_line_naming_the_key(tmp_path: Path) -> None:
    config = empty_config(tmp_path)
    config.write_text(config.read_text() + f'[serve]\nlisten = "0.0.0.0:{free_port()}"\n')
    out = run_cli("--config", str(config), "serve")
    assert out.returncode == 2 and "[serve] tls_cert" in out.stderr and "SSH tunnel" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    config.write_text(config.read_text() + f'tls_cert = "{tmp_path / "missing.pem"}"\n')
    out = run_cli("--config", str(config), "serve")
    assert out.returncode == 2 and "[serve] tls_cert" in out.stderr and "missing.pem" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_tls_and_token_beyond_loopback(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    serve: ServeProcess = start_serve(
        empty_config(tmp_path), tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), host="0.0.0.0"
    )
    try:
        assert serve.url.startswith("https://")
        base = serve.url.replace("0.0.0.0", "127.0.0.1")
        token = token_path().read_text().strip()
        with pytest.raises(httpx.ConnectError):  # the system store does not know our certificate
            httpx.get(base + "/_ctxbudget/info", trust_env=False)
        ca = ssl.create_default_context(cafile=str(cert))
        for given in (None, "wrong-token", token[:-1], token + "x"):
            headers = {"Authorization": f"Bearer {given}"} if given else {}
            for path in PATHS:
                answer = httpx.get(f"{base}/_ctxbudget/{path}", headers=headers, verify=ca, trust_env=False)
                assert answer.status_code == 401, (path, given)
                body = answer.json()
                assert list(body) == ["error"] and set(body["error"]) == {"type", "message"}
                assert "epoch" not in answer.text and "records" not in answer.text
            restart = httpx.post(
                base + "/_ctxbudget/server/restart", json={}, headers=headers, verify=ca, trust_env=False
            )
            assert restart.status_code == 401
        good = {"Authorization": f"Bearer {token}"}
        info = httpx.get(base + "/_ctxbudget/info", headers=good, verify=ca, trust_env=False)
        assert info.status_code == 200 and info.json()["epoch"]
        with httpx.stream("GET", base + "/_ctxbudget/feed", headers=good, verify=ca, trust_env=False) as feed:
            first = json.loads(next(feed.iter_lines()))
            assert first["type"] == "hello" and first["data"]["resumed"] is False

        # The CLI: token from the environment or a file, CA from --tls-ca or the environment.
        ok = run_cli("requests", "--connect", base, "--tls-ca", str(cert), env={"CTXBUDGET_TOKEN": token})
        assert ok.returncode == 0, ok.stderr
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
        ok = run_cli("requests", "--connect", base, "--token-file", str(token_file),
                     env={"CTXBUDGET_TLS_CA": str(cert), "CTXBUDGET_TOKEN": ""})  # fmt: skip
        assert ok.returncode == 0, ok.stderr
        refused = run_cli("requests", "--connect", base, "--tls-ca", str(cert), env={"CTXBUDGET_TOKEN": ""})
        assert refused.returncode == 1 and "token refused" in refused.stderr
    finally:
        assert serve.stop() == 0, serve.output()[-2000:]
    assert token not in serve.output()


def test_loopback_takes_no_token_but_checks_a_given_one_and_the_host(tmp_path: Path) -> None:
    serve = start_serve(empty_config(tmp_path), tmp_path)
    try:
        assert httpx.get(serve.url + "/_ctxbudget/info", trust_env=False).status_code == 200
        wrong = httpx.get(
            serve.url + "/_ctxbudget/info", headers={"Authorization": "Bearer nope"}, trust_env=False
        )
        assert wrong.status_code == 401
        rebinding = httpx.get(
            serve.url + "/_ctxbudget/info", headers={"Host": "evil.example"}, trust_env=False
        )
        assert rebinding.status_code == 401 and "epoch" not in rebinding.text
        # A page in the user's own browser reaches loopback with the right Host: it still gets nothing.
        for page in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            restart = httpx.post(
                serve.url + "/_ctxbudget/server/restart", content=b"{}", headers=page, trust_env=False
            )
            assert restart.status_code == 401 and "unauthorized" in restart.text, restart.text
    finally:
        assert serve.stop() == 0


def test_proxy_url_for_agents_elsewhere_and_insecure_http(tmp_path: Path) -> None:
    """serve --proxy with the proxy on a wildcard address: /info names it by the host the client used."""
    proxy_port = free_port()
    serve = start_serve(
        empty_config(tmp_path), tmp_path, "--insecure-http", "--proxy", "--proxy-listen",
        f"0.0.0.0:{proxy_port}", "--allow-remote", host="0.0.0.0",
    )  # fmt: skip
    try:
        base = serve.url.replace("0.0.0.0", "127.0.0.1")
        assert base.startswith("http://") and "unencrypted" in serve.output()
        assert httpx.get(base + "/_ctxbudget/info", trust_env=False).status_code == 401  # beyond loopback
        token = token_path().read_text().strip()
        port = base.rsplit(":", 1)[1]
        headers = {"Authorization": f"Bearer {token}", "Host": f"gpu-box.example:{port}"}

        def proxy_url() -> str:
            return str(
                httpx.get(base + "/_ctxbudget/info", headers=headers, trust_env=False).json()["proxy_url"]
            )

        assert (
            eventually_sync(proxy_url, what="the proxy child listening")
            == f"http://gpu-box.example:{proxy_port}"
        )
        # The proxy's control API answers through serve (it only answers loopback clients itself).
        state = httpx.get(base + "/_ctxbudget/state", headers=headers, trust_env=False)
        assert state.status_code == 200 and "mcp" in state.json()
    finally:
        assert serve.stop() == 0, serve.output()[-2000:]


def test_control_api_without_a_proxy_is_503(tmp_path: Path) -> None:
    config = empty_config(tmp_path)
    config.write_text(config.read_text() + f'[proxy]\nlisten = "127.0.0.1:{free_port()}"\n')  # nothing there
    serve = start_serve(config, tmp_path)
    try:
        answer = httpx.get(serve.url + "/_ctxbudget/state", trust_env=False)
        assert answer.status_code == 503 and "--proxy" in answer.json()["error"]
    finally:
        assert serve.stop() == 0
