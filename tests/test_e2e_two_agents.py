"""Two Claude Code sessions at once through the dashboard's proxy to one llama-server with `-np 2`: the
sessions stay apart, both slots serve, and each in-flight row is joined to the slot that served it."""

from __future__ import annotations

import asyncio
import re
import secrets
from pathlib import Path

import pytest
from support.agents import filesystem_mcp, make_claude_project, run_claude_print
from support.eventually import eventually
from support.llama import StartServer
from test_feed_live import live_settings

from tui.core.feed.feed import DashboardFeed
from tui.core.feed.live import LiveDriver
from tui.core.feed.updates import FeedUpdate, SlotsUpdate, SourceStatus
from tui.core.journal.reader import JournalReader

pytestmark = [pytest.mark.llama, pytest.mark.slow, pytest.mark.timeout(420)]

SLOT_TASK = re.compile(r"slot launch_slot_: id +(\d+) \| task (\d+)")


async def test_two_claude_code_sessions_on_two_slots(
    llama_server: StartServer, claude_code: Path, mcp_filesystem: Path, tmp_path: Path, free_port: int
) -> None:
    # Batches of 512: the server logs prompt progress often enough to join each request while it runs.
    server = llama_server(ctx_size=2 * 65536, parallel=2, extra_args=("-b", "512", "-ub", "512"))
    settings = live_settings(server, tmp_path, free_port)
    feed = DashboardFeed(LiveDriver(settings))
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    task = asyncio.create_task(feed.run())
    proxy_url = f"http://127.0.0.1:{free_port}"
    try:
        await eventually(
            lambda: any(
                isinstance(u, SourceStatus) and u.source == "proxy" and u.health == "ok" for u in updates
            ),
            timeout=30,
            what="the dashboard's proxy",
        )
        projects = []
        for name in ("alpha", "beta"):
            base = tmp_path / name
            base.mkdir()
            projects.append(make_claude_project(base, [filesystem_mcp(mcp_filesystem, base / "project")]))
        runs = await asyncio.gather(
            *(
                asyncio.to_thread(
                    run_claude_print,
                    claude_code,
                    project,
                    proxy_url,
                    "list files",
                    api_key="sk-ant-two-" + secrets.token_hex(6),
                )
                for project in projects
            )
        )
        for run in runs:
            assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-1500:]
        reader = JournalReader(settings.journal_path())
        rows = await eventually(
            lambda: (
                (found := [r for r in reader.latest(100) if r.kind == "main" and r.state == "done"])
                and len({r.session_id for r in found}) == 2
                and found
            ),
            timeout=60,
            what="main rows of both sessions",
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # Two sessions, kept apart: each has its own main rows and its own conversation.
    sessions = {r.session_id for r in rows}
    assert len(sessions) == 2 and all(sessions)
    # Both slots served (the log's slot launches), and the dashboard joined in-flight rows to slots.
    slots_used = {int(slot) for slot, _ in SLOT_TASK.findall(server.log_text())}
    assert slots_used == {0, 1}, server.log_text()[-3000:]
    joined = {
        f.record_id: f.slot
        for u in updates
        if isinstance(u, SlotsUpdate)
        for f in u.flights
        if f.slot is not None
    }
    by_session: dict[str, set[int]] = {}
    for row in rows:
        if row.id in joined:
            by_session.setdefault(row.session_id, set()).add(joined[row.id])
    assert set(by_session) == sessions, (joined, [(r.id, r.session_id) for r in rows])
