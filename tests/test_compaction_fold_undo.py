"""Proxy compaction aimed by a focus, its folded turns kept in the journal, and undo giving back the bytes.

Through the real proxy in front of a real llama-server, with a recorder between them that keeps every
byte the upstream receives.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from support.llama import RunningServer
from test_actions_compaction import BODIES, follow_up
from test_control_api import Proxy, StartProxy, start_proxy  # noqa: F401 - the fixture is used by name
from textual.widgets import Tree

from tui.core.actions.compaction import folded_text
from tui.core.actions.compaction_summary import FOCUS_INSTRUCTION
from tui.core.journal.writer import JournalReader
from tui.core.records import RequestRecord
from tui.ui.screens.detail import fill_folded, folded_messages, resolve_folded

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]
FOCUS = "the handler's request body and the failing respond() call"


class Recorder:
    """A pass-through upstream that records (path, body bytes) of every request it forwards."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.seen: list[tuple[str, bytes]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append((request.path_qs, body))
        headers = {"Content-Type": request.headers.get("Content-Type", "application/json")}
        async with ClientSession() as session, session.request(
            request.method, self.target + request.path_qs, data=body, headers=headers
        ) as upstream:
            data = await upstream.read()
            return web.Response(
                body=data, status=upstream.status, content_type=upstream.content_type or "application/json"
            )

    def model_requests(self) -> list[bytes]:
        return [body for path, body in self.seen if path.startswith("/v1/messages")]


@pytest.fixture
async def recorder(shared_llama_server: RunningServer) -> AsyncIterator[Recorder]:
    rec = Recorder(shared_llama_server.url)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}"
    yield rec
    await runner.cleanup()


def client_bytes(body: dict[str, Any]) -> bytes:
    """How a client might write it: indented, non-ASCII kept, so byte-for-byte means something."""
    return json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8")


async def send_raw(proxy: Proxy, raw: bytes) -> RequestRecord:
    before = len(proxy.records)
    response = await proxy.client.post(
        "/v1/messages", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert await asyncio.to_thread(proxy.service.flush, 60.0)
    for _ in range(200):
        if len(proxy.records) > before:
            break
        await asyncio.sleep(0.01)
    return proxy.records[-1]


async def test_focus_reaches_the_summary_folded_bytes_are_journaled_and_undo_restores_them(
    recorder: Recorder, start_proxy: StartProxy, tmp_path: Path,  # noqa: F811 - the imported fixture
) -> None:
    proxy: Proxy = await start_proxy(recorder.url)
    body = BODIES["anthropic"](3)
    body["messages"][0]["content"][0]["text"] = "task 0: fix the handler — ünïcode stays as sent"
    body["max_tokens"] = 2
    first = client_bytes(body)
    await send_raw(proxy, first)
    assert recorder.model_requests()[-1] == first  # nothing active: the client's bytes, untouched

    answer = await proxy.control("compact", {"session": None, "keep_turns": 1, "focus": FOCUS})
    assert answer["focus"] == FOCUS and "folded" not in answer
    summary_request = json.loads(recorder.model_requests()[-1])
    prompt = summary_request["messages"][0]["content"]
    assert FOCUS_INSTRUCTION + FOCUS in prompt  # the focus went into the summary prompt upstream

    nxt = follow_up(body, "anthropic")
    nxt["max_tokens"] = 2
    second = client_bytes(nxt)
    folded, exact = folded_text(second, 12, nxt["messages"])  # 3 turns of 4 messages folded, 1 kept
    assert exact and folded.encode("utf-8") in second
    assert answer["folded_bytes"] == len(folded.encode("utf-8"))
    compacted = await send_raw(proxy, second)
    forwarded = recorder.model_requests()[-1]
    assert compacted.compaction_saved_tokens == answer["tokens_saved"]
    assert len(forwarded) < len(second) and folded.encode("utf-8") not in forwarded

    again = await send_raw(proxy, second)  # the next request of the session: rewritten the same way

    journal = JournalReader(tmp_path / "journal.sqlite3")
    try:
        kept = journal.get(compacted.id)
        pointer = journal.get(again.id)
        listed = journal.latest(1)[0]
        assert kept is not None and kept.compaction_folded == folded  # the exact text the client sent
        # The journal keeps the text once: later rows of the compaction point at the first one.
        assert pointer is not None and pointer.compaction_folded == f"@{compacted.id}"
        assert resolve_folded(pointer, journal.get).compaction_folded == folded
    finally:
        journal.close()
    assert listed.compaction_folded is None  # listings do not read it: only the detail view loads it
    assert len(folded_messages(kept.compaction_folded)) == 12

    (active,) = (await proxy.control("state"))["compactions"]["active"]
    assert active["focus"] == FOCUS and active["folded_messages"] == 12
    undone = await proxy.control("compact/undo", {"session": answer["session_id"]})
    assert undone["folded_messages"] == 12 and undone["folded_bytes"] == len(folded.encode("utf-8"))
    restored = await send_raw(proxy, second)
    assert recorder.model_requests()[-1] == second  # byte for byte what the client sent
    assert restored.compaction_saved_tokens is None and restored.compaction_folded is None
    assert recorder.model_requests()[-1].index(folded.encode("utf-8")) == second.index(folded.encode("utf-8"))


def test_detail_tree_lists_the_folded_turns() -> None:
    body = BODIES["anthropic"](2)
    raw = client_bytes(body)
    folded, exact = folded_text(raw, 4, body["messages"])
    assert exact
    record = RequestRecord(
        id=7, ts=0.0, method="POST", path="/v1/messages", status=200,
        compaction_saved_tokens=900, compaction_folded=folded,
    )  # fmt: skip
    tree: Tree[None] = Tree("request")
    fill_folded(tree.root, record)
    (node,) = tree.root.children
    assert str(node.label).startswith("folded by compaction  4 messages")
    labels = [str(leaf.label) for leaf in node.children]
    assert labels[0] == "0 user: task 0: fix the handler"
    assert labels[2].startswith("2 user: def handler(request):") and labels[2].endswith("…")

    pending: Tree[None] = Tree("request")
    fill_folded(pending.root, RequestRecord(**{**record.__dict__, "compaction_folded": None}), loaded=False)
    assert [str(n.label) for n in pending.root.children] == ["folded by compaction: loading…"]


def test_folded_text_without_bytes_is_marked_not_exact() -> None:
    body = BODIES["openai"](2)
    text, exact = folded_text(None, 3, body["messages"])
    assert not exact and json.loads("[" + text + "]") == body["messages"][:3]
    text, exact = folded_text(b"not json", 3, body["messages"])
    assert not exact


async def test_undo_over_http_is_refused_without_a_compaction(
    recorder: Recorder, start_proxy: StartProxy,  # noqa: F811 - the imported fixture
) -> None:
    proxy: Proxy = await start_proxy(recorder.url)
    response = await proxy.client.post("/_ctxbudget/compact", json={"keep_turns": 1, "focus": 3})
    assert response.status_code == 400 and "focus" in response.text
    missing = await proxy.client.post("/_ctxbudget/compact/undo", json={"session": None})
    assert missing.status_code == 404
