"""Server-side cache misses explained from the REAL llama-server's log: eviction on -np 2, restart."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from builders import exchange, words
from support.llama import RunningServer, StartServer

from tui.core.anatomy.analyze import Analyzer
from tui.core.feed.breaks import BreakExplainer
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.updates import FeedInfo, FeedUpdate, RecordsUpdate
from tui.core.insight.findings import break_cause
from tui.core.logs.monitor import LogMonitor
from tui.core.records import RequestRecord
from tui.core.tokens import ServerCounter, TiktokenCounter, TokenCounter

pytestmark = pytest.mark.llama

PATH = "/v1/chat/completions"


class _NoDriver:
    """A feed driver with nothing to run: the test pushes rows and log lines itself."""

    info = FeedInfo(mode="attach")

    async def run(self, feed: DashboardFeed) -> None:
        raise AssertionError("not run")

    def load_body(self, record_id: int) -> bytes | None:
        return None

    def load_record(self, record_id: int) -> RequestRecord | None:
        return None

    def take_backlog(self) -> list[RequestRecord] | None:
        return None

    def store_speeds(self, record: RequestRecord) -> None:
        return None

    def control_client(self) -> None:
        return None

    def server_control(self) -> None:
        return None


class Session:
    """One conversation of OpenAI-shaped turns with its own session header."""

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": f"You are agent {name}. " + words(300, seed)}
        ]
        self.seed = seed

    def body(self, extra: dict[str, Any]) -> dict[str, Any]:
        self.seed += 1
        self.messages.append({"role": "user", "content": words(40, self.seed)})
        return {"messages": self.messages, "max_tokens": 2, "temperature": 0, **extra}


class Run:
    """Sends turns to a real server, analyses them like the worker, keeps journal-like rows."""

    def __init__(self, counter: TokenCounter | None = None) -> None:
        self.analyzer = Analyzer(counter or TiktokenCounter())
        self.rows: list[RequestRecord] = []

    def turn(self, server: RunningServer, session: Session, **extra: Any) -> RequestRecord:
        body = session.body(extra)
        started = time.time()
        with server.client() as client:
            resp = client.post(PATH, json=body, headers={"x-session-id": session.name})
        assert resp.status_code == 200, resp.text
        answer = resp.json()
        session.messages.append({"role": "assistant", "content": answer["choices"][0]["message"]["content"]})
        headers = {"content-type": "application/json", "x-session-id": session.name}
        result = self.analyzer.analyze(
            exchange(
                body, PATH, headers=headers, response=json.dumps(answer).encode(),
                response_headers={"content-type": "application/json"},
            )
        )  # fmt: skip
        row = RequestRecord(
            id=len(self.rows) + 1, ts=started, method="POST", path=PATH, status=200,
            session_id=result.session_id, kind=result.kind, usage=result.usage,
            cache_break=result.cache_break, anatomy=result.anatomy,
        )  # fmt: skip
        self.rows.append(row)
        return row

    def explained(self, log_lines: list[str]) -> list[RequestRecord]:
        monitor = LogMonitor()
        monitor.feed_lines(log_lines)
        breaks = BreakExplainer()
        breaks.note(self.rows)
        return breaks.explain(monitor.timeline)


def test_other_session_evicting_the_slot_is_named_with_the_tokens_lost(llama_server: StartServer) -> None:
    server = llama_server(parallel=2, ctx_size=8192, extra_args=("--cache-ram", "0"))
    a, b = Session("alpha", 1), Session("beta", 500)
    run = Run()
    first = run.turn(server, a, id_slot=0)
    run.turn(server, b, id_slot=0)  # beta takes alpha's slot
    second = run.turn(server, a, id_slot=0)
    assert first.usage.prompt_tokens is not None
    cb = second.cache_break
    assert cb is not None and cb.cause == "server", cb
    assert cb.reusable_prefix_tokens == first.usage.prompt_tokens
    assert (second.usage.cached_tokens or 0) < first.usage.prompt_tokens // 2

    (row,) = run.explained(server.log_text().splitlines())
    assert row.id == second.id and row.cache_break is not None
    lost = first.usage.prompt_tokens - (second.usage.cached_tokens or 0)
    text = row.cache_break.description
    assert text.startswith("evicted: slot 0 ran session beta's main request (task "), text
    assert f"{lost:,} tokens of this conversation's cache lost" in text
    assert row.cache_break.where == "slot 0"
    assert break_cause(text) == "server cache lost"

    # The dashboard's feed does the same join: the row is re-emitted with the explanation.
    feed = DashboardFeed(_NoDriver())
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    feed.add_records(run.rows)
    feed.add_log_lines(server.log_text().splitlines())
    feed.flush()
    replaced = [u for u in updates if isinstance(u, RecordsUpdate) and u.replaced]
    assert [[r.cache_break for r in u.records] for u in replaced] == [[row.cache_break]]
    # a later version of the row (speeds joined, say) keeps the explanation
    feed.add_records([second])
    assert isinstance(updates[-1], RecordsUpdate) and updates[-1].records[0].cache_break == row.cache_break


def test_two_sessions_alternating_on_two_slots_name_each_other(llama_server: StartServer) -> None:
    """As seen live: a turn's title request takes the idle slot, so the other session's turn takes the
    least recently used one, the slot holding this conversation; its next turn lands on the other slot."""
    server = llama_server(parallel=2, ctx_size=8192, extra_args=("--cache-ram", "0"))
    run = Run()
    alpha, beta = Session("alpha", 1), Session("beta", 300)
    title = Session("alpha", 900)
    title.messages[0]["content"] = "Generate a title for this conversation: " + words(20, 5)
    first = run.turn(server, alpha)
    assert run.turn(server, title).kind == "title"
    run.turn(server, beta)
    second = run.turn(server, alpha)
    assert first.usage.prompt_tokens is not None and second.cache_break is not None

    (row,) = run.explained(server.log_text().splitlines())
    assert row.id == second.id and row.cache_break is not None
    lost = first.usage.prompt_tokens - (second.usage.cached_tokens or 0)
    text = row.cache_break.description
    assert " (picked by lru), not slot " in text and "; session beta's main request (task " in text, text
    host = "; the host prompt cache is off (--cache-ram 0)"
    assert text.endswith(f"took that slot{host}: {lost:,} tokens of this conversation's cache lost"), text


def test_restart_between_two_requests_is_named(llama_server: StartServer) -> None:
    run = Run()
    a = Session("alpha", 1)
    before = llama_server(ctx_size=4096)
    first = run.turn(before, a)
    lines = before.log_text().splitlines()
    before.stop()
    after = llama_server(ctx_size=4096)
    second = run.turn(after, a)
    cb = second.cache_break
    assert cb is not None and cb.cause == "server", cb
    assert first.usage.prompt_tokens is not None

    lost = first.usage.prompt_tokens - (second.usage.cached_tokens or 0)
    expected = f"server restarted between the two requests: {lost:,} tokens of this conversation's cache lost"
    # a dashboard that followed the log through the restart sees both server runs
    (row,) = run.explained(lines + after.log_text().splitlines())
    assert row.cache_break is not None and row.cache_break.where == "server restart"
    assert row.cache_break.description == expected


def test_reusable_prefix_is_in_server_tokens_like_the_servers_reuse(llama_server: StartServer) -> None:
    server = llama_server(ctx_size=8192)
    run = Run(ServerCounter(server.url))
    alpha = Session("alpha", 1)
    for _ in range(3):
        run.turn(server, alpha)
    alpha.messages[4]["content"] = "an answer the agent rewrote " + words(30, 77)  # the second reply
    edited = run.turn(server, alpha)
    cb = edited.cache_break
    assert cb is not None and cb.where == "messages[4]", cb
    assert edited.anatomy is not None and cb.server_reused_tokens is not None
    parts_only = 0
    for part in edited.anatomy.parts:
        if part.message_index == 4 or part.category == "template_overhead":
            break
        parts_only += part.tokens
    # the server's own reuse stops at the edit too; counting the template's share lands next to it
    off_by = abs(cb.reusable_prefix_tokens - cb.server_reused_tokens)
    assert off_by < abs(parts_only - cb.server_reused_tokens)
    assert off_by <= 0.05 * cb.server_reused_tokens
