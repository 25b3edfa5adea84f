"""An eviction explained end to end: two sessions through the dashboard's proxy to a real llama-server on
`-np 2`, one session's turn taking the slot that held the other's cache. b11434's host prompt cache
(`--cache-ram`, 8 GiB by default) saves the evicted conversation and gives it back, so the miss needs the
host cache off or too small; the dashboard names the evicting session, the tokens lost and why the host
cache did not help, keeps the explanation in the journal row, and `ctxbudget requests --json` (a later
reader, a separate process) shows it too. Direct requests pin the slot (`id_slot`); real Claude Code
sessions get there by the server's own least-recently-used pick."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from builders import words
from support.agents import make_claude_project, run_claude_print
from support.eventually import eventually
from support.llama import StartServer
from support.serve_process import ctxbudget_cmd
from test_feed_live import live_settings

from tui.core.config import Settings
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import LiveDriver
from tui.core.feed.updates import FeedUpdate, RecordsUpdate, SourceStatus
from tui.core.journal.reader import JournalReader
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]


class Conversation:
    """One session's chat turns, sent through the proxy with its session header."""

    def __init__(self, name: str, seed: int, model: str | None = None) -> None:
        self.name = name
        self.seed = seed
        self.model = model  # a router's model name (the router sends the request to that model's child)
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": f"You are agent {name}. " + words(300, seed)}
        ]

    async def turn(self, proxy: str, slot: int) -> None:
        self.seed += 1
        self.messages.append({"role": "user", "content": words(40, self.seed)})
        # id_slot pins the slot: on -np 2 the server would otherwise pick the idle one and nothing is evicted
        body: dict[str, Any] = {"messages": self.messages, "max_tokens": 2, "temperature": 0, "id_slot": slot}
        if self.model is not None:
            body["model"] = self.model
        async with httpx.AsyncClient(base_url=proxy, timeout=60, trust_env=False) as client:
            resp = await client.post("/v1/chat/completions", json=body, headers={"x-session-id": self.name})
        assert resp.status_code == 200, resp.text
        self.messages.append(
            {"role": "assistant", "content": resp.json()["choices"][0]["message"]["content"]}
        )


def _explained(updates: list[FeedUpdate]) -> RequestRecord | None:
    for u in updates:
        if isinstance(u, RecordsUpdate) and u.replaced:
            for r in u.records:
                if r.cache_break is not None and r.cache_break.description.startswith("evicted:"):
                    return r
    return None


HOST_CACHE = {
    "0": "the host prompt cache is off (--cache-ram 0)",
    "1": "the host prompt cache could not keep its {kept:,} tokens (their state is over --cache-ram 1 MiB)",
}


async def start(
    llama_server: StartServer, model: Path, tmp_path: Path, free_port: int, *extra: str,
    log_file: str | None = None, poll_interval: float | None = None,
) -> tuple[Any, Any, DashboardFeed, list[FeedUpdate], asyncio.Task[None]]:
    """A real server on -np 2 and a live dashboard feed on it, its proxy listening (log_file "": none)."""
    server = llama_server(model, parallel=2, ctx_size=8192, extra_args=extra)
    settings = live_settings(server, tmp_path, free_port, log_file=log_file)
    if poll_interval is not None:
        settings = dataclasses.replace(
            settings, server=dataclasses.replace(settings.server, poll_interval=poll_interval)
        )
    feed, updates, task = await start_feed(settings)
    return server, settings, feed, updates, task


async def start_feed(settings: Settings) -> tuple[DashboardFeed, list[FeedUpdate], asyncio.Task[None]]:
    """A live dashboard feed on `settings`, running, its proxy listening."""
    feed = DashboardFeed(LiveDriver(settings))
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    await eventually(
        lambda: any(
            isinstance(u, SourceStatus) and u.source == "proxy" and u.health == "ok" for u in updates
        ),
        timeout=30,
        what="the dashboard's proxy",
    )
    return feed, updates, task


async def explained_and_stored(
    updates: list[FeedUpdate], reader: JournalReader, seen: Callable[[], object]
) -> tuple[RequestRecord, RequestRecord]:
    """The row the dashboard showed with an eviction explained, and that row as the journal then holds it."""
    shown = await eventually(
        lambda: _explained(updates), timeout=60, what="the eviction explained", seen=seen
    )
    stored = await eventually(
        lambda: (row := reader.get(shown.id)) is not None and row.cache_break == shown.cache_break and row,
        timeout=30,
        what="the explanation in the journal row",
    )
    return shown, stored


async def test_default_host_prompt_cache_gives_an_evicted_conversation_back(
    llama_server: StartServer, real_model: Path, tmp_path: Path, free_port: int
) -> None:
    server, settings, _, _, task = await start(llama_server, real_model, tmp_path, free_port)
    proxy = f"http://127.0.0.1:{free_port}"
    alpha, beta = Conversation("alpha", 1), Conversation("beta", 500)
    try:
        for conversation in (alpha, beta, alpha):
            await conversation.turn(proxy, 0)
        reader = JournalReader(settings.journal_path())
        rows = await eventually(
            lambda: len(found := [r for r in reader.latest(10) if r.status == 200]) == 3 and found,
            timeout=30,
            what="three rows",
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    first, _, second = rows
    assert "found better prompt" in server.log_text()
    assert first.usage.prompt_tokens is not None
    assert (second.usage.cached_tokens or 0) >= first.usage.prompt_tokens
    assert second.cache_break is None


@pytest.mark.parametrize("cache_ram", sorted(HOST_CACHE), ids=lambda v: f"cache-ram-{v}")
async def test_eviction_by_another_session_is_named_and_kept_in_the_journal(
    llama_server: StartServer, real_model: Path, tmp_path: Path, free_port: int, cache_ram: str
) -> None:
    # The real model: its KV state (~14 MiB for 600 tokens) is over a 1 MiB host cache, the tiny one's is not
    server = llama_server(real_model, parallel=2, ctx_size=8192, extra_args=("--cache-ram", cache_ram))
    settings = live_settings(server, tmp_path, free_port)
    feed = DashboardFeed(LiveDriver(settings))
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    proxy = f"http://127.0.0.1:{free_port}"
    reader = JournalReader(settings.journal_path())
    alpha, beta = Conversation("alpha", 1), Conversation("beta", 500)
    try:
        await eventually(
            lambda: any(
                isinstance(u, SourceStatus) and u.source == "proxy" and u.health == "ok" for u in updates
            ),
            timeout=30,
            what="the dashboard's proxy",
        )
        await alpha.turn(proxy, 0)
        await beta.turn(proxy, 0)  # beta's task runs on the slot that held alpha's conversation
        await alpha.turn(proxy, 0)
        shown = await eventually(lambda: _explained(updates), timeout=60, what="the eviction explained")
        stored = await eventually(
            lambda: (
                (row := reader.get(shown.id)) is not None
                and row.cache_break is not None
                and row.cache_break.description.startswith("evicted:")
                and row
            ),
            timeout=30,
            what="the explanation in the journal row",
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    rows = [r for r in reader.latest(10) if r.status == 200]
    assert [r.session_id for r in rows] == ["alpha", "beta", "alpha"], [(r.id, r.session_id) for r in rows]
    first, _, second = rows
    assert shown.id == second.id and first.usage.prompt_tokens is not None
    cb = shown.cache_break
    assert cb is not None and cb.cause == "server" and cb.where == "slot 0"
    # the server's own numbers: what alpha's first request left in the slot, what the second reused
    log = server.log_text()
    assert f"task.n_tokens = {first.usage.prompt_tokens}" in log
    lost = first.usage.prompt_tokens - (second.usage.cached_tokens or 0)
    assert (second.usage.cached_tokens or 0) < first.usage.prompt_tokens // 2
    assert cb.description.startswith("evicted: slot 0 ran session beta's main request (task "), cb.description
    kept = int(re.findall(r"stop processing: n_tokens = (\d+)", log)[0])  # what alpha's task left in the slot
    host = HOST_CACHE[cache_ram].format(kept=kept)
    assert cb.description.endswith(
        f" in between, and {host}: {lost:,} tokens of this conversation's cache lost"
    ), cb.description
    assert stored.cache_break == cb

    # A reader started later (another process) sees the same explanation from the journal alone.
    out = subprocess.run(
        [*ctxbudget_cmd(), "requests", "--json", "--journal", str(settings.journal_path())],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    by_id = {row["id"]: row for row in map(json.loads, out.stdout.splitlines())}
    assert by_id[second.id]["cache_break"]["description"] == cb.description

    # And a dashboard started later keeps it without the log: a fresh feed on the journal's rows.
    later = DashboardFeed(
        LiveDriver(live_settings(server, tmp_path, free_port, log_file=str(tmp_path / "none")))
    )
    seen: list[FeedUpdate] = []
    later.subscribe(seen.append)
    later.add_records(reader.latest(10), initial=True)
    later.add_log_lines([])
    later.flush()
    again = [r for u in seen if isinstance(u, RecordsUpdate) for r in u.records if r.id == second.id]
    assert again and all(r.cache_break == cb for r in again)


SLOT_LINE = re.compile(r"slot launch_slot_: id +(\d+) \| task (\d+)")


async def test_claude_code_sessions_on_two_slots_name_the_session_that_took_the_slot(
    llama_server: StartServer, claude_code: Path, tmp_path: Path, free_port: int
) -> None:
    """Real Claude Code, three sessions on -np 2 without the host cache: each with its own system prompt
    (`--system-prompt`), so no two share a prefix and the server picks the least recently used slot; the
    third session takes the slot of the first, whose next turn (`--resume`) finds its cache gone."""
    server = llama_server(
        parallel=2, ctx_size=2 * 32768, extra_args=("--cache-ram", "0", "-b", "512", "-ub", "512")
    )
    settings = live_settings(server, tmp_path, free_port)
    feed = DashboardFeed(LiveDriver(settings))
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    proxy = f"http://127.0.0.1:{free_port}"
    ids = {name: str(uuid.uuid4()) for name in ("alpha", "beta", "gamma")}
    projects = {}
    for name in ids:
        base = tmp_path / name
        base.mkdir()
        projects[name] = make_claude_project(base)

    def claude(name: str, *resume: str) -> None:
        # Same-size prompts (alpha's and beta's first turns both 539 tokens): the log's clock tells
        # their tasks apart.
        system = f"You are agent {name}. " + words(400, 7 * (len(name) + 1))
        args = ("--system-prompt", system, "--tools", "", *(resume or ("--session-id", ids[name])))
        run = run_claude_print(claude_code, projects[name], proxy, "hi", extra_args=args)
        assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-1500:]

    reader = JournalReader(settings.journal_path())
    try:
        await eventually(
            lambda: any(
                isinstance(u, SourceStatus) and u.source == "proxy" and u.health == "ok" for u in updates
            ),
            timeout=30,
            what="the dashboard's proxy",
        )
        for name in ("alpha", "beta", "gamma"):
            await asyncio.to_thread(claude, name)
        await asyncio.to_thread(claude, "alpha", "--resume", ids["alpha"])
        row = await eventually(
            lambda: next(
                (
                    r
                    for r in reader.latest(50)
                    if r.session_id == ids["alpha"]
                    and r.cache_break is not None
                    and r.cache_break.cause == "server"
                    and "prefix unchanged" not in r.cache_break.description
                ),
                None,
            ),
            timeout=60,
            what="alpha's second turn explained in the journal",
            seen=lambda: [
                (
                    r.id,
                    r.session_id[:8],
                    r.kind,
                    r.path,
                    r.usage.prompt_tokens,
                    r.usage.cached_tokens,
                    r.cache_break,
                )
                for r in reader.latest(50)
            ],
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    rows = reader.latest(50)
    cb = row.cache_break
    assert cb is not None
    assert f"session {ids['gamma']}'s main request (task " in cb.description, (
        cb.description,
        [(r.id, r.session_id, r.kind, r.usage.prompt_tokens, r.usage.cached_tokens) for r in rows],
    )
    before = [r for r in rows if r.session_id == ids["alpha"] and r.id < row.id and r.kind == row.kind]
    assert before and before[-1].usage.prompt_tokens is not None
    lost = before[-1].usage.prompt_tokens - (row.usage.cached_tokens or 0)
    assert cb.description.endswith(f": {lost:,} tokens of this conversation's cache lost"), cb.description
    assert SLOT_LINE.findall(server.log_text())


async def test_eviction_is_explained_from_slots_polls_when_no_log_is_followed(
    llama_server: StartServer, real_model: Path, tmp_path: Path, free_port: int
) -> None:
    """No log file (a server started by someone else, its log elsewhere): /slots polls alone tell which task
    each slot ran, so the evicting session is still named and the explanation kept in the journal. The poll
    interval is the default 2 s: the dashboard reads /slots as each request ends."""
    _, settings, _, updates, task = await start(
        llama_server, real_model, tmp_path, free_port, "--cache-ram", "0", log_file="", poll_interval=2.0
    )
    proxy = f"http://127.0.0.1:{free_port}"
    reader = JournalReader(settings.journal_path())
    alpha, beta = Conversation("alpha", 1), Conversation("beta", 500)
    try:
        for conversation in (alpha, beta, alpha):
            await conversation.turn(proxy, 0)
        _, stored = await explained_and_stored(
            updates,
            reader,
            seen=lambda: [
                (r.id, r.session_id, r.usage.prompt_tokens, r.usage.output_tokens, r.usage.cached_tokens)
                for r in reader.latest(10)
            ],
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert not any(isinstance(u, SourceStatus) and u.source == "log" and u.health == "ok" for u in updates)
    rows = [r for r in reader.latest(10) if r.status == 200]
    assert [r.session_id for r in rows] == ["alpha", "beta", "alpha"]
    first, middle, second = rows
    assert stored.id == second.id and first.usage.prompt_tokens is not None
    cb = stored.cache_break
    assert cb is not None and cb.where == "slot 0"
    lost = first.usage.prompt_tokens - (second.usage.cached_tokens or 0)
    assert (second.usage.cached_tokens or 0) < first.usage.prompt_tokens // 2
    # beta's task is named with the tokens it left in the slot, as /slots tells (prompt + generated, less the
    # last sampled ones), or, when the next turn took the slot before a poll saw it idle, at least what was
    # in the KV mid-prompt
    beta_named = (
        r"evicted: slot 0 ran session beta's main request \(task \d+, (at least )?([\d,]+) tokens\)"
        " in between"
    )
    named = re.match(beta_named, cb.description)
    assert named is not None, cb.description
    left = (middle.usage.prompt_tokens or 0) + (middle.usage.output_tokens or 0)
    low = 1 if named[1] else left - 2
    assert low <= int(named[2].replace(",", "")) <= left, (named[2], middle.usage)
    assert cb.description.endswith(
        "the host prompt cache did not restore it (no server log is followed to tell why):"
        f" {lost:,} tokens of this conversation's cache lost"
    ), cb.description
