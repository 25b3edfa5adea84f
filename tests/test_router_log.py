"""Router mode's log, split per model: the real b11434 router copies each child's lines prefixed `[port]`.

Two models answer the same Anthropic request (no timings in the response: the speeds come from the log),
both children number their task 0, and each journal row must take its own model's timing lines.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from support.eventually import eventually_sync
from support.serve_process import ctxbudget_cmd
from test_control_api import Proxy, StartProxy, start_proxy  # noqa: F401 - the fixture is used by name
from test_doctor import by_check, settings
from test_router_real import Router, poll, router  # noqa: F401 - the fixture is used by name

from tui.core.doctor import diagnose
from tui.core.feed.feed import DashboardFeed
from tui.core.feed.timings import matches
from tui.core.feed.updates import FeedInfo, FeedUpdate, RecordsUpdate, SlotsUpdate
from tui.core.logs.monitor import LogMonitor
from tui.core.logs.state import ServerFacts
from tui.core.poll.kv_sharing import kv_sharing
from tui.core.records import RequestRecord

pytestmark = [pytest.mark.llama, pytest.mark.timeout(240)]
BODY = {"max_tokens": 4, "messages": [{"role": "user", "content": "the same words for both models"}]}


class _NoDriver:
    info = FeedInfo(mode="attach")

    def take_backlog(self) -> list[RequestRecord] | None:
        return None

    def store_speeds(self, record: RequestRecord) -> None:
        return None


def child_prompt_ms(log: str) -> dict[str, float]:
    """Each model's last `prompt eval time` from its child's `[port]` lines, read straight from the text."""
    ports = dict(re.findall(r"spawning server instance with name=(\S+) on port (\d+)", log))
    out: dict[str, float] = {}
    for model, port in ports.items():
        times = re.findall(rf"^\[{port}\] .*prompt eval time = +([\d.]+) ms", log, re.MULTILINE)
        out[model] = float(times[-1])
    return out


async def test_each_row_takes_its_own_models_speeds_from_the_router_log(
    router: Router, start_proxy: StartProxy, tmp_path: Path  # noqa: F811 - the imported fixtures
) -> None:
    proxy: Proxy = await start_proxy(router.url)
    alpha = await proxy.send({**BODY, "model": "alpha"})
    beta = await proxy.send({**BODY, "model": "beta"})
    assert (alpha.model, beta.model) == ("alpha", "beta")
    assert alpha.usage.prompt_per_second is None and beta.usage.prompt_per_second is None  # Anthropic
    assert alpha.usage.prompt_tokens == beta.usage.prompt_tokens  # the same size: only the model tells
    eventually_sync(lambda: len(child_prompt_ms(router.log.read_text())) == 2, what="both timing lines")
    text = router.log.read_text()
    expected = child_prompt_ms(text)
    lines = text.splitlines()
    assert any(line.startswith("[") for line in lines)

    updates: list[FeedUpdate] = []
    feed = DashboardFeed(_NoDriver())  # type: ignore[arg-type] - the feed needs only these
    feed.subscribe(updates.append)
    feed.add_log_lines(lines)
    feed.add_records([alpha, beta])
    feed.flush()
    rows = {r.model: r for u in updates if isinstance(u, RecordsUpdate) for r in u.records}
    assert rows["alpha"].usage.prompt_ms == pytest.approx(expected["alpha"])
    assert rows["beta"].usage.prompt_ms == pytest.approx(expected["beta"])
    assert rows["alpha"].usage.gen_per_second and rows["beta"].usage.gen_per_second

    # Each child's facts are its own: slots, per-slot n_ctx and kv_unified from its startup line.
    models = feed.monitor.model_monitors()
    assert set(models) == {"alpha", "beta"}
    for monitor in models.values():
        facts = monitor.facts_tracker.facts
        assert (facts.n_slots, facts.n_ctx_slot, facts.kv_unified) == (2, 2048, False)
        assert [t.task for t in monitor.timeline.requests(10)] == [0]  # both children count from 0
    assert feed.monitor.timeline.requests(10) == ()  # the router itself runs no task

    # The facts the header and KV panel show are the model in front's (the router's own say nothing).
    snapshot = await poll(router.url)
    assert snapshot.model in ("alpha", "beta")
    feed.set_server(snapshot)
    feed.flush()
    facts = [u for u in updates if isinstance(u, ServerFacts)][-1]
    assert facts.model is not None and facts.model.endswith(f"{snapshot.model}.gguf")
    assert (facts.n_slots, facts.n_ctx_slot, facts.kv_unified) == (2, 2048, False)
    assert kv_sharing(facts, snapshot).short == "each"
    # The doctor reads the same line for its slot_split check (the router's own lines say nothing of it).
    _, results = await diagnose(settings({"url": router.url, "log_file": str(router.log)}))
    split = by_check(results)["slot_split"]
    assert (split.status, split.message) == (
        "warn", "the KV cache is split across 2 slots: each request gets 2,048 tokens at most"
    )  # fmt: skip


    # `ctxbudget parse-log` on the router's log: one table per model, "model" in each JSON task.
    out = subprocess.run(
        [*ctxbudget_cmd(), "parse-log", str(router.log), "--summary-only", "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    tasks = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted((t["model"], t["task"]) for t in tasks) == [("alpha", 0), ("beta", 0)]
    assert {t["model"]: t["prompt_ms"] for t in tasks} == pytest.approx(expected)
    text_out = subprocess.run(
        [*ctxbudget_cmd(), "parse-log", str(router.log), "--summary-only"],
        capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert text_out.startswith("alpha: 1 task(s)\n") and "\nbeta: 1 task(s)\n" in text_out


async def test_ports_from_models_when_the_spawn_lines_were_not_read(
    router: Router, start_proxy: StartProxy  # noqa: F811 - the imported fixtures
) -> None:
    """A dashboard started after the models loaded: the port comes from GET /models (`--port`)."""
    proxy: Proxy = await start_proxy(router.url)
    beta = await proxy.send({**BODY, "model": "beta"})
    eventually_sync(lambda: "beta" in child_prompt_ms(router.log.read_text()), what="beta's timing line")
    text = router.log.read_text()
    expected = child_prompt_ms(text)["beta"]
    children_only = [line for line in text.splitlines() if line.startswith("[")]

    monitor = LogMonitor()
    monitor.feed_lines(children_only)
    assert monitor.for_model("beta") is monitor  # no port known yet
    snapshot = await poll(router.url)
    monitor.learn_ports((m.id, m.args) for m in snapshot.models)
    child = monitor.for_model("beta")
    assert child is not monitor
    (task,) = child.timeline.requests(10)
    assert task.prompt_ms == pytest.approx(expected) and matches(beta, task)

    # With one model running, the slot panel follows its child's slot lines as it does for one server.
    updates: list[FeedUpdate] = []
    feed = DashboardFeed(_NoDriver())  # type: ignore[arg-type] - the feed needs only these
    feed.subscribe(updates.append)
    feed.set_server(snapshot)
    feed.add_log_lines(children_only)
    feed.flush()
    (slots,) = [u for u in updates if isinstance(u, SlotsUpdate)]
    served = [(s.slot, s.last_task, s.phase) for s in slots.slots if s.last_task is not None]
    assert served == [(1, 0, "idle")]
