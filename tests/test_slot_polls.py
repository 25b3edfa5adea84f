"""Slot tasks from /slots polls (no log followed): folding polls, restarts, and the explanations they give."""

from __future__ import annotations

import dataclasses

from tui.core.feed.breaks import BreakExplainer
from tui.core.feed.flights import FlightTracker
from tui.core.feed.slot_polls import PolledTasks, polled_slot_states
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
    assert polled.observe([busy(0, 7, 1408, 0)], 2.0)  # mid-prompt: what is in the KV so far
    (task,) = polled.requests()
    assert (task.prompt_tokens, task.seen_tokens, task.reused_tokens) == (None, 1408, 0)
    assert polled.observe([busy(0, 7, 1831, 0, decoded=2)], 2.5)  # generating: the prompt's size
    assert polled.observe([busy(0, 7, 1831, 0, decoded=3)], 2.7) is False  # nothing new about task 7
    assert polled.observe([idle(0, 7, 1832)], 3.0)
    (task,) = polled.requests()
    assert (task.slot, task.task, task.prompt_tokens, task.reused_tokens) == (0, 7, 1831, 0)
    assert (task.released_tokens, task.done, task.started_ts) == (1832, True, 2.0)
    generation = polled.generation
    polled.observe([idle(0, 7, 1832)], 5.0)
    assert polled.generation == generation  # the same poll again changes nothing


def test_polled_states_tell_the_tokens_in_so_far_and_the_size_once_generating() -> None:
    prompt, generating, unused = polled_slot_states(
        [busy(0, 7, 1408, 24), busy(1, 9, 500, 0, decoded=5), SlotSnapshot(2, 4096, False)], 10.0
    )
    assert (prompt.phase, prompt.task, prompt.prompt_tokens, prompt.n_tokens, prompt.reused_tokens) == (
        "prompt", 7, None, 1408, 24,
    )  # fmt: skip
    assert (generating.phase, generating.prompt_tokens, generating.n_gen) == ("generating", 500, 5)
    assert (unused.phase, unused.task, unused.last_task, unused.n_tokens) == ("idle", None, None, None)
    tracker = FlightTracker()
    flying = dataclasses.replace(row(1, "alpha", 0, 0), state="in_flight", usage=Usage())
    tracker.add([flying])
    (first,) = tracker.observe([prompt], now=100.0)
    assert first.text(first.started) == "processing the prompt on slot 0: 1,408 tokens in"
    later = dataclasses.replace(prompt, n_tokens=1536)
    (second,) = tracker.observe([later], now=101.0)
    assert second.done_tokens == 1536 and second.rate == 128.0 and second.eta_s is None
    assert second.text(second.started) == "processing the prompt on slot 0: 1,536 tokens in at 128 t/s"


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
