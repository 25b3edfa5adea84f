"""`ctxbudget serve --proxy` against a real llama-server: the feed stream, resume, rows and records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from support.eventually import eventually_sync
from support.llama import StartServer, free_port
from support.serve_process import FeedReader, ServeProcess, serve_config, start_serve

from tui.core.journal.reader import JournalReader

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]

BODY: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 8,
    "stream": False,
    "system": [{"type": "text", "text": "You are a careful coding agent. " * 20}],
    "messages": [{"role": "user", "content": [{"type": "text", "text": "say hi"}]}],
}


def post(proxy_url: str, text: str) -> None:
    body = {**BODY, "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    answer = httpx.post(
        proxy_url + "/v1/messages", json=body, headers={"x-api-key": "k"}, timeout=60, trust_env=False
    )
    assert answer.status_code == 200, answer.text


def journal_ids(path: Path) -> list[int]:
    reader = JournalReader(path)
    try:
        return [r.id for r in reader.since(0, 10_000)]
    finally:
        reader.close()


def wait_rows(feed: FeedReader, ids: list[int]) -> None:
    eventually_sync(
        lambda: set(ids) <= set(feed.row_ids()), timeout=30, what=f"rows {ids} on the feed", seen=feed.row_ids
    )


def test_feed_stream_resume_and_restart(llama_server: StartServer, tmp_path: Path) -> None:
    server = llama_server()
    config = serve_config(tmp_path, server, free_port())
    journal = tmp_path / "journal.sqlite3"
    serve: ServeProcess = start_serve(config, tmp_path, "--proxy")
    try:
        info = httpx.get(serve.url + "/_ctxbudget/info", timeout=10, trust_env=False).json()
        assert info["feed"]["mode"] == "live" and info["epoch"]
        proxy_url = eventually_sync(
            lambda: httpx.get(serve.url + "/_ctxbudget/info", trust_env=False).json()["proxy_url"],
            what="the proxy child listening",
        )
        # The operator's terminal says where agents point and what serve follows.
        eventually_sync(lambda: f"proxy ok: proxy on {proxy_url}" in serve.output(), what="proxy line")
        assert f"log ok: following {server.log_path}" in serve.output()

        first = FeedReader(serve.url)
        eventually_sync(
            lambda: first.of("server") and first.of("log"),
            what="server snapshot and log lines",
            seen=lambda: [e["type"] for e in first.events],
        )
        hello = first.events[0]
        assert hello["type"] == "hello" and hello["data"]["resumed"] is False
        assert first.events[1]["type"] == "rows" and first.events[1]["data"]["initial"] is True
        assert first.of("server")[-1]["data"]["url"] == server.url
        assert any("llama" in line or "slot" in line for e in first.of("log") for line in e["data"]["lines"])
        epoch = hello["data"]["epoch"]

        post(proxy_url, "one")
        post(proxy_url, "two")
        eventually_sync(lambda: len(journal_ids(journal)) == 2, what="two journal rows")
        wait_rows(first, journal_ids(journal))
        seen = first.row_ids()
        after = first.last_id()
        first.close()  # the link drops mid-stream

        post(proxy_url, "three")
        post(proxy_url, "four")
        eventually_sync(lambda: len(journal_ids(journal)) == 4, what="four journal rows")
        resumed = FeedReader(serve.url, epoch=epoch, after=after, rows_after=max(seen))
        wait_rows(resumed, [i for i in journal_ids(journal) if i > max(seen)])
        assert resumed.events[0]["data"]["resumed"] is True
        assert all(e["id"] > after for e in resumed.events[1:] if e["type"] != "ping")
        got = seen + resumed.row_ids()
        assert got == journal_ids(journal), "a resumed feed lost or duplicated rows"
        assert not resumed.of("log_backlog_read"), "a resumed feed replayed the backlog"
        after2, rows2 = resumed.last_id(), max(got)
        resumed.close()

        # rows, records and bodies
        rows = httpx.get(
            serve.url + "/_ctxbudget/rows", params={"after": 0, "limit": 2}, trust_env=False
        ).json()
        assert [r["id"] for r in rows["records"]] == journal_ids(journal)[:2] and rows["last_id"] == max(got)
        newest = httpx.get(serve.url + "/_ctxbudget/rows", params={"last": 1}, trust_env=False).json()
        assert [r["id"] for r in newest["records"]] == [max(got)]
        one = httpx.get(serve.url + f"/_ctxbudget/records/{max(got)}", trust_env=False).json()
        assert one["id"] == max(got) and one["anatomy"]["parts"]
        body = httpx.get(serve.url + f"/_ctxbudget/records/{max(got)}/body", trust_env=False)
        assert body.status_code == 200 and b"four" in body.content
        assert httpx.get(serve.url + "/_ctxbudget/records/99999", trust_env=False).status_code == 404
    finally:
        assert serve.stop() == 0, serve.output()[-2000:]

    # A new serve (new epoch) on the same journal: rows written while the client was away come by rows_after.
    serve2 = start_serve(config, tmp_path, "--proxy")
    try:
        proxy_url = eventually_sync(
            lambda: httpx.get(serve2.url + "/_ctxbudget/info", trust_env=False).json()["proxy_url"],
            what="the proxy child listening",
        )
        post(proxy_url, "five")
        eventually_sync(lambda: len(journal_ids(journal)) == 5, what="five journal rows")
        again = FeedReader(serve2.url, epoch=epoch, after=after2, rows_after=rows2)
        wait_rows(again, [i for i in journal_ids(journal) if i > rows2])
        assert again.events[0]["data"]["resumed"] is False and again.events[0]["data"]["epoch"] != epoch
        assert again.row_ids() == [i for i in journal_ids(journal) if i > rows2]
        assert all(not e["data"]["initial"] for e in again.of("rows"))
        eventually_sync(lambda: again.of("log_backlog_read") and again.of("server"), what="backlog + server")
        again.close()
    finally:
        assert serve2.stop() == 0, serve2.output()[-2000:]
