"""Router mode with two models working at once: each in-flight row follows its own model's slot lines.

The lines are b11434's (copied from a real router run; beta's kv_unified set to 'true' to tell the two
apart; test_router_log.py is the live test): both children number their tasks from 0, so only the
`[port]` prefix tells them apart.
"""

from __future__ import annotations

import dataclasses
import time

from test_inflight_rows import provisional

from tui.core.feed.feed import DashboardFeed
from tui.core.feed.updates import FeedInfo, FeedUpdate, LogUpdate, SlotsUpdate
from tui.core.poll.snapshots import RouterModel, ServerSnapshot
from tui.core.records import RequestRecord

ROUTER_LINES = [
    "0.00.076.090 I srv          load: spawning server instance with name=alpha on port 46001",
    "[46001] 0.00.093.076 I srv    load_model: initializing, n_slots = 2, n_ctx_slot = 2048, "
    "kv_unified = 'false'",
    "0.00.204.842 I srv          load: spawning server instance with name=beta on port 33759",
    "[33759] 0.00.091.963 I srv    load_model: initializing, n_slots = 2, n_ctx_slot = 2048, "
    "kv_unified = 'true'",
    "0.00.302.851 I srv  proxy_reques: proxying request to model beta on port 33759",
    "[33759] 0.00.097.463 I slot get_availabl: id  1 | task -1 | selected slot by LRU, t_last = -1",
    "[33759] 0.00.097.513 I slot launch_slot_: id  1 | task 0 | processing task, is_child = 0",
    "0.00.331.737 I srv  proxy_reques: proxying request to model alpha on port 46001",
    "[46001] 0.00.099.763 I slot get_availabl: id  0 | task -1 | selected slot by LRU, t_last = -1",
    "[46001] 0.00.099.816 I slot launch_slot_: id  0 | task 0 | processing task, is_child = 0",
]


class _NoDriver:
    info = FeedInfo(mode="attach")

    def take_backlog(self) -> list[RequestRecord] | None:
        return None

    def store_speeds(self, record: RequestRecord) -> None:
        return None


def router_snapshot(*loaded: str) -> ServerSnapshot:
    models = tuple(RouterModel(name, "loaded") for name in loaded)
    return ServerSnapshot(time.time(), "up", "http://127.0.0.1:1", model=loaded[0], models=models)


def test_each_in_flight_row_joins_a_task_of_its_own_model() -> None:
    feed = DashboardFeed(_NoDriver())  # type: ignore[arg-type] - the feed needs only these
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    feed.set_server(router_snapshot("alpha", "beta"))
    # alpha's request was forwarded first, but beta's child took its task first.
    alpha = dataclasses.replace(provisional(0), id=1, ts=100.0, dialect="anthropic", model="alpha")
    beta = dataclasses.replace(provisional(1), id=2, ts=101.0, dialect="anthropic", model="beta")
    feed.add_records([alpha, beta])
    feed.add_log_lines(ROUTER_LINES)
    feed.flush()
    slots = [u for u in updates if isinstance(u, SlotsUpdate)][-1]
    joined = {f.record_id: (f.slot, f.phase) for f in slots.flights}
    # Without the model, the oldest row (alpha's) would have taken beta's slot 1.
    assert joined[1][0] == 0 and joined[2][0] == 1, joined
    # The log pane names the model where the router wrote the child's port.
    shown = [line.text for u in updates if isinstance(u, LogUpdate) for line in u.lines]
    assert shown[6] == "[beta] " + ROUTER_LINES[6].split("] ", 1)[1]
    assert shown[0] == ROUTER_LINES[0]
    facts = feed.monitor.model_monitors()
    assert facts["alpha"].facts_tracker.facts.kv_unified is False
    assert facts["beta"].facts_tracker.facts.kv_unified is True


def test_one_model_running_follows_its_child_like_one_server() -> None:
    feed = DashboardFeed(_NoDriver())  # type: ignore[arg-type] - the feed needs only these
    updates: list[FeedUpdate] = []
    feed.subscribe(updates.append)
    feed.set_server(router_snapshot("beta"))
    beta = dataclasses.replace(provisional(1), id=2, ts=101.0, dialect="anthropic", model="beta")
    feed.add_records([beta])
    feed.add_log_lines(ROUTER_LINES[2:7])
    feed.flush()
    slots = [u for u in updates if isinstance(u, SlotsUpdate)][-1]
    assert [(s.slot, s.task) for s in slots.slots if s.busy] == [(1, 0)]
    assert [(f.record_id, f.slot) for f in slots.flights] == [(2, 1)]
