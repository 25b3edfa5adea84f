"""Slot tasks from /slots polls (no log followed): folding polls, restarts, and the explanations they give."""

from __future__ import annotations

import dataclasses

from tui.core.feed.breaks import BreakExplainer
from tui.core.feed.slot_polls import PolledTasks
from tui.core.poll.snapshots import SlotSnapshot
from tui.core.records import CacheBreak, RequestRecord, Usage


def busy(slot: int, task: int, prompt: int, reused: int, decoded: int = 0) -> SlotSnapshot:
    """A slot as /slots shows it mid-task (b11434: n_prompt_tokens grows with each generated token)."""
    return SlotSnapshot(slot, 4096, True, task, prompt + decoded, 0, reused, decoded)


def idle(slot: int, task: int, left: int) -> SlotSnapshot:
    """A slot after its task: the last task id and the tokens it left in the KV."""
    return SlotSnapshot(slot, 4096, False, task, left)


def row(
    rid: int, session: str, prompt: int, out: int, cached: int | None = None, broke: bool = False
) -> RequestRecord:
    """A final journal row; `broke`: its cache was lost on the server (the worker's unexplained break)."""
    cb = CacheBreak("prefix unchanged", "prefix unchanged but reused little", 900, cached, "server")
    usage = Usage(prompt_tokens=prompt, cached_tokens=cached, output_tokens=out)
    return RequestRecord(
        id=rid, ts=1000.0 + rid, method="POST", path="/v1/chat/completions", status=200, kind="main",
        session_id=session, dialect="openai", usage=usage, cache_break=cb if broke else None,
    )  # fmt: skip


def test_polls_fold_into_one_task_per_slot_run_with_its_prompt_reuse_and_what_it_left() -> None:
    polled = PolledTasks()
    assert polled.observe([SlotSnapshot(0, 4096, False)], 1.0) is False  # a slot never used says nothing
    assert polled.observe([busy(0, 7, 1831, 24)], 2.0)
    assert polled.observe([busy(0, 7, 1831, 24, decoded=2)], 2.5) is False  # nothing new about task 7
    assert polled.observe([idle(0, 7, 1833)], 3.0)
    (task,) = polled.requests()
    assert (task.slot, task.task, task.prompt_tokens, task.reused_tokens) == (0, 7, 1831, 24)
    assert (task.released_tokens, task.done) == (1833, True)
    assert task.started_ts == 2.0
    generation = polled.generation
    polled.observe([idle(0, 7, 1833)], 5.0)
    assert polled.generation == generation  # the same poll again changes nothing


def test_task_ids_starting_again_mean_a_restart() -> None:
    polled = PolledTasks()
    polled.observe([idle(0, 40, 500)], 1.0)
    polled.observe([idle(0, 2, 300)], 2.0)
    assert [(t.task, t.run) for t in polled.requests()] == [(40, 0), (2, 1)]


def test_history_is_bounded() -> None:
    polled = PolledTasks(max_tasks=4)
    for task in range(10):
        polled.observe([idle(0, task, 100 + task)], float(task))
    assert [t.task for t in polled.requests()] == [6, 7, 8, 9]
    assert [t.task for t in polled.requests(2)] == [8, 9]


def test_an_eviction_seen_only_by_idle_polls_names_the_session_that_took_the_slot() -> None:
    polled = PolledTasks()
    breaks = BreakExplainer()
    alpha1, beta, alpha2 = row(1, "alpha", 900, 2), row(2, "beta", 700, 5), row(3, "alpha", 950, 2, 6, True)
    polled.observe([idle(0, 3, 900 + 2 - 2)], 1001.5)  # cut at max_tokens: P+O-2 left
    polled.observe([idle(0, 9, 700 + 5 - 1)], 1002.5)  # a natural stop: P+O-1
    polled.observe([busy(0, 14, 950, 6)], 1003.2)
    breaks.note([alpha1, beta, alpha2])
    (explained,) = breaks.explain(polled, lambda ts: ts)
    cb = explained.cache_break
    assert cb is not None and cb.where == "slot 0"
    assert cb.description == (
        "evicted: slot 0 ran session beta's main request (task 9, 704 tokens) in between, and the host prompt"
        " cache did not restore it (no server log is followed to tell why): 894 tokens of this conversation's"
        " cache lost"
    )


def test_a_conversation_moved_to_another_slot_and_a_restart_are_told_from_polls() -> None:
    polled = PolledTasks()
    breaks = BreakExplainer()
    polled.observe([idle(1, 3, 900)], 1001.5)
    polled.observe([idle(1, 3, 900), idle(0, 9, 704)], 1002.5)
    polled.observe([busy(0, 14, 950, 6), idle(1, 3, 900)], 1003.2)
    alpha1, beta, alpha2 = row(1, "alpha", 900, 1), row(2, "beta", 700, 5), row(3, "alpha", 950, 2, 6, True)
    breaks.note([alpha1, beta, alpha2])
    (moved,) = breaks.explain(polled, lambda ts: ts)
    assert moved.cache_break is not None
    assert moved.cache_break.description.startswith("served by slot 0, not slot 1 that held its cache")

    restarted = PolledTasks()
    restarted.observe([idle(0, 30, 900)], 1001.5)
    restarted.observe([busy(0, 1, 950, 6)], 1003.2)  # task ids from 0 again
    again = BreakExplainer()
    again.note([alpha1, dataclasses.replace(alpha2, id=4)])
    (told,) = again.explain(restarted, lambda ts: ts)
    assert told.cache_break is not None
    assert told.cache_break.description == (
        "server restarted between the two requests: 894 tokens of this conversation's cache lost"
    )
