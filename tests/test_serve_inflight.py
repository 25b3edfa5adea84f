"""In-flight rows over serve's feed: a remote dashboard sees a long request's row while it runs, and its
final row replaces it, live or after a reconnect."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from support.eventually import eventually_sync
from support.llama import StartServer, free_port
from support.serve_process import FeedReader, serve_config, start_serve

from tui.core.remote.cursor import FeedCursor

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]


def rows_of(feed: FeedReader, row_id: int, *, replaced: bool) -> list[dict[str, object]]:
    """The versions of one row the feed delivered, from `replaced` events or from ordinary ones."""
    return [
        r for e in feed.of("rows") if bool(e["data"].get("replaced")) == replaced
        for r in e["data"]["records"] if r["id"] == row_id
    ]  # fmt: skip


def test_a_long_request_shows_in_flight_and_its_final_row_replaces_it(
    llama_server: StartServer, tmp_path: Path
) -> None:
    server = llama_server(n_predict=-1, ctx_size=32768)
    serve = start_serve(serve_config(tmp_path, server, free_port()), tmp_path, "--proxy")
    live = FeedReader(serve.url)
    try:
        proxy_url = eventually_sync(
            lambda: httpx.get(serve.url + "/_ctxbudget/info", trust_env=False).json()["proxy_url"],
            what="the proxy child listening",
        )
        # Thousands of tokens that do not stop at EOS: seconds of work, past the 0.5 s in-flight mark.
        body = {"model": "m", "max_tokens": 12000, "ignore_eos": True,
                "messages": [{"role": "user", "content": "write a long story"}]}  # fmt: skip
        answer: list[int] = []
        url = proxy_url + "/v1/chat/completions"
        worker = threading.Thread(
            target=lambda: answer.append(httpx.post(url, json=body, timeout=120, trust_env=False).status_code)
        )
        worker.start()
        flying = eventually_sync(
            lambda: [r for e in live.of("rows") for r in e["data"]["records"] if r["state"] == "in_flight"],
            timeout=60,
            what="an in-flight row on the feed",
            seen=live.row_ids,
        )
        row_id = int(flying[0]["id"])  # type: ignore[call-overload]
        worker.join(120)
        assert answer == [200]
        final = eventually_sync(
            lambda: rows_of(live, row_id, replaced=True), timeout=30, what="the final row as a replacement"
        )
        assert final[-1]["state"] != "in_flight" and final[-1]["status"] == 200
        # A dashboard that saw the row in flight and lost the link meanwhile names it when it reconnects.
        late = FeedReader(serve.url, rows_after=row_id, flying=[row_id])
        try:
            caught_up = eventually_sync(
                lambda: rows_of(late, row_id, replaced=True), timeout=30, what="the final row in the catch-up"
            )
            assert caught_up[-1]["state"] != "in_flight"
            assert rows_of(late, row_id, replaced=False) == []  # not as a new row: it is not new to it
        finally:
            late.close()
    finally:
        live.close()
        serve.stop()


def test_the_cursor_takes_final_rows_of_rows_shown_in_flight_only() -> None:
    cursor = FeedCursor(rows_after=7)
    records = [{"id": 5}, {"id": 7}, {"id": 8}]
    assert [r["id"] for r in cursor.new_rows(records, flying=[7])] == [7, 8]
    assert cursor.rows_after == 8
    assert cursor.new_rows([{"id": 6}], flying=[7]) == []  # a row it holds final already: never twice
    assert cursor.new_rows([{"id": 7}], flying=[7]) == [{"id": 7}] and cursor.rows_after == 8  # never back
    assert FeedCursor().query([3, 4])["flying"] == "3,4"
