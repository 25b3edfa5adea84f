"""`ctxbudget transforms|mcp|compact|inspect --transforms` against a real proxy (or none) and real server."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.llama import RunningServer
from test_actions_compaction import BODIES
from test_control_api import agent_body

from tui.commands import compact_cmd, inspect_cmd, mcp_cmd, transforms_cmd
from tui.core.config import AnatomySettings, JournalSettings, ProxySettings, Settings
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.proxy.service import ProxyService

pytestmark = [pytest.mark.timeout(240)]


def ns(**given: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"json": False, "name": None, "user": None, **given})


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "data"
    monkeypatch.setenv("CTXBUDGET_DATA_DIR", str(path))
    return path


def offline_settings(free_port: int) -> Settings:
    return Settings(proxy=ProxySettings(listen=f"127.0.0.1:{free_port}"))


def test_transforms_without_a_proxy_edit_the_switch_file(
    data_dir: Path, free_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = offline_settings(free_port)
    assert transforms_cmd.run_transforms(ns(action="on", name="slim_results"), settings) == 0
    out = capsys.readouterr().out
    assert "transform_switches.json" in out and "no proxy answers" in out
    assert TransformSwitchStore(["stabilize"]).enabled() == ("stabilize", "slim_results")
    assert transforms_cmd.run_transforms(ns(action="list", json=True), settings) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {t["name"]: t["enabled"] for t in listed["transforms"]}["slim_results"] is True
    assert transforms_cmd.run_transforms(ns(action="off"), settings) == 2


@pytest.fixture
async def proxy(
    shared_llama_server: RunningServer, data_dir: Path, tmp_path: Path
) -> AsyncIterator[ProxyService]:
    settings = Settings(
        proxy=ProxySettings(listen="127.0.0.1:0", upstream=shared_llama_server.url),
        journal=JournalSettings(path=str(tmp_path / "j.sqlite3")),
        anatomy=AnatomySettings(mcp_servers=["filesystem"]),
    )
    service = ProxyService(settings, analysis="thread")
    await service.start()
    yield service
    await service.stop()


def live_settings(service: ProxyService) -> Settings:
    return Settings(proxy=ProxySettings(listen=f"127.0.0.1:{service.port}"))


async def send(service: ProxyService, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=service.url, timeout=120) as client:
        response = await client.post("/v1/messages", json=body)
    assert response.status_code == 200, response.text
    assert await asyncio.to_thread(service.flush, 60.0)
    await asyncio.sleep(0.05)  # on_record runs on this loop after the worker finished


@pytest.mark.llama
async def test_mcp_and_transforms_go_through_the_running_proxy(
    proxy: ProxyService, capsys: pytest.CaptureFixture[str]
) -> None:
    await send(proxy, agent_body())
    settings = live_settings(proxy)
    code = await asyncio.to_thread(mcp_cmd.run_mcp, ns(action="list"), settings)
    out = capsys.readouterr().out
    assert code == 0 and "proxy at" in out and "never called this session: filesystem" in out
    code = await asyncio.to_thread(mcp_cmd.run_mcp, ns(action="off", name="filesystem"), settings)
    out = capsys.readouterr().out
    assert code == 0 and "in the running proxy" in out and "re-processes" in out
    assert proxy.mcp_store.off() == {"filesystem"}
    # Switched off, it is listed as off and no longer suggested (the latest request still had it).
    code = await asyncio.to_thread(mcp_cmd.run_mcp, ns(action="list"), settings)
    out = capsys.readouterr().out
    assert code == 0 and "off  filesystem" in out and "never called this session: filesystem" not in out

    code = await asyncio.to_thread(
        transforms_cmd.run_transforms, ns(action="on", name="trim_descriptions"), settings
    )
    out = capsys.readouterr().out
    assert code == 0 and "in the running proxy" in out
    assert proxy.rewriter is not None and "trim_descriptions" in proxy.rewriter.enabled_transforms()


@pytest.mark.llama
async def test_compact_command_through_the_real_proxy(
    proxy: ProxyService, capsys: pytest.CaptureFixture[str]
) -> None:
    await send(proxy, {**BODIES["anthropic"](3), "max_tokens": 2})
    settings = live_settings(proxy)
    args = argparse.Namespace(
        mode="proxy", session=None, keep_turns=1, pane=None, socket=None, undo=False, json=True, user=None
    )
    assert await asyncio.to_thread(compact_cmd.run_compact, args, settings) == 0
    item = json.loads(capsys.readouterr().out)
    assert item["tokens_saved"] > 0
    args.undo = True
    assert await asyncio.to_thread(compact_cmd.run_compact, args, settings) == 0
    undone = json.loads(capsys.readouterr().out)
    # Undo names what goes out again: the folded messages, as many bytes as the client sent them with.
    assert undone["session_id"] == item["session_id"]
    assert undone["folded_messages"] > 0 and undone["folded_bytes"] > 0


def test_inspect_previews_the_enabled_transforms(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "body.json"
    file.write_text(json.dumps(agent_body(cch="98765")))
    args = argparse.Namespace(
        file=str(file),
        json=True,
        mcp_server=[],
        counter="tiktoken",
        server=None,
        parts=False,
        transforms=True,
    )
    assert inspect_cmd.run_inspect(args, Settings()) == 0
    out = json.loads(capsys.readouterr().out)
    (step,) = out["transforms"]["steps"]
    assert step["name"] == "stabilize" and step["changed"]
    assert (
        "-x-anthropic-billing-header" in out["transforms"]["diff"]
        and "cch=00000" in out["transforms"]["diff"]
    )
    args.json = False
    assert inspect_cmd.run_inspect(args, Settings()) == 0
    text = capsys.readouterr().out
    assert "transforms (stabilize)" in text and "+x-anthropic-billing-header" in text
