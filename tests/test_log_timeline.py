"""Timeline, live slot state and server facts built from the committed log corpora."""

from __future__ import annotations

from pathlib import Path

from tui.core.logs.monitor import LogMonitor
from tui.core.logs.timeline import Timeline

DATA = Path(__file__).parent / "data" / "logs"


def monitor_for(name: str) -> LogMonitor:
    monitor = LogMonitor()
    monitor.feed_lines((DATA / name).read_text().splitlines())
    return monitor


def test_reference_request_timeline_collects_the_whole_request() -> None:
    monitor = monitor_for("reference_b11434.log")
    by_task = {r.task: r for r in monitor.timeline.requests()}
    big = by_task[12]
    assert (big.slot, big.selection, big.similarity, big.f_keep) == (0, "lcp", 0.541, 0.895)
    assert (big.n_ctx_slot, big.prompt_tokens) == (32768, 2949)
    assert (
        big.full_reprocess and big.reused_tokens == 0
    )  # the forced re-processing wins over the cached prefix
    assert (big.checkpoints_created, big.checkpoints_restored, big.checkpoints_erased) == (1, 1, 4)
    assert big.context_shifts == 1
    assert [(p.n_tokens, p.progress, p.tokens_per_s) for p in big.progress] == [(8192, 0.41, 2685.9)]
    assert (big.new_tokens, big.generated_tokens, big.prompt_ms, big.eval_per_s, big.total_ms) == (
        1595,
        188,
        1009.35,
        72.51,
        3588.29,
    )
    assert (big.released_tokens, big.truncated, big.done) == (1782, False, True)
    assert big.started_ts == 5.0 and big.ended_ts == 11.000005
    assert big.fill == 1782 / 32768
    small = by_task[1]
    assert (small.slot, small.selection, small.new_tokens, small.released_tokens) == (3, "lru", 28, 47)
    failed = by_task[10]
    assert failed.error is not None and failed.cancelled
    assert (failed.error_n_prompt_tokens, failed.error_n_ctx) == (5002, 4096)


def test_task_summary_json_has_numbers_as_numbers() -> None:
    monitor = monitor_for("reference_b11434.log")
    data = monitor.timeline.requests()[0].to_json()
    assert data["kind"] == "task_summary"
    assert isinstance(data["prompt_tokens"], int) and isinstance(data["prompt_ms"], float)
    assert data["progress"] == [[8.05, 8192, 0.41, 2685.9]]


def test_older_build_timeline_uses_bare_timing_lines_and_old_cache_lines() -> None:
    monitor = monitor_for("older_build.log")
    by_task = {r.task: r for r in monitor.timeline.requests()}
    first, second = by_task[0], by_task[190]
    assert (first.prompt_tokens, first.reused_tokens, first.new_tokens, first.generated_tokens) == (
        1595,
        0,
        1595,
        188,
    )
    assert first.checkpoints_created == 1 and first.progress[0].progress == 0.676489
    assert (second.selection, second.similarity) == ("lcp", 0.541)
    assert (second.prompt_tokens, second.reused_tokens, second.new_tokens) == (2949, 1595, 1354)
    assert second.checkpoints_restored == 1 and second.checkpoints_erased == 1
    assert second.truncated and second.context_shifts == 1


def test_live_slot_state_marks_checkpoint_restores_and_erases() -> None:
    lines = [
        "0.01.000.000 I srv    load_model: initializing, n_slots = 2, n_ctx_slot = 8192, kv_unified = 'false'",  # noqa: E501
        "0.01.000.100 I slot launch_slot_: id  1 | task 5 | processing task, is_child = 0",
        "0.01.000.200 I slot   operator(): id  1 | task 5 | new prompt, n_ctx_slot = 8192, n_keep = 0, "
        "task.n_tokens = 4000",
        "0.01.000.300 I slot   operator(): id  1 | task 5 | cached n_tokens = 0, memory_seq_rm [0, end)",
        "0.01.000.400 I slot create_check: id  1 | task 5 | created context checkpoint 1 of 32 (pos_min = 0, "
        "pos_max = 999, n_tokens = 1000, size = 1.000 MiB)",
        "0.01.000.500 I slot create_check: id  1 | task 5 | created context checkpoint 2 of 32 (pos_min = 1000, "  # noqa: E501
        "pos_max = 1999, n_tokens = 2000, size = 1.000 MiB)",
        "0.04.000.000 I slot print_timing: id  1 | task 5 | prompt processing, n_tokens =   3000, progress = 0.75, "  # noqa: E501
        "t =   3.00 s / 1000.00 tokens per second",
    ]
    monitor = LogMonitor()
    monitor.feed_lines(lines)
    busy = monitor.slot_tracker.get(1)
    assert busy is not None
    assert (busy.task, busy.phase, busy.progress, busy.busy, busy.n_ctx) == (5, "prompt", 0.75, True, 8192)
    assert busy.live_checkpoints == 2 and busy.checkpoint_mib == 2.0
    assert monitor.slot_tracker.get(0) is not None  # announced by the init line, never used
    monitor.feed_lines(
        [
            "0.05.000.000 I slot      release: id  1 | task 5 | stop processing: n_tokens = 4010, truncated = 0",  # noqa: E501
            "0.06.000.000 I slot launch_slot_: id  1 | task 9 | processing task, is_child = 0",
            "0.06.000.100 I slot   operator(): id  1 | task 9 | restored context checkpoint (pos_min = 1000, "
            "pos_max = 1999, n_tokens = 2000, n_past = 1999, size = 1.000 MiB)",
            "0.06.000.200 I slot   operator(): id  1 | task 9 | erased invalidated context checkpoint (pos_min = 0, "  # noqa: E501
            "pos_max = 999, n_tokens = 1000, n_swa = 64, pos_next = 1999, size = 1.000 MiB)",
        ]
    )
    slot = monitor.slot_tracker.get(1)
    assert slot is not None
    assert slot.task == 9 and slot.last_task == 5 and slot.phase == "prompt"
    marks = {c.pos_min: c for c in slot.checkpoints}
    assert marks[1000].state == "restored" and marks[1000].restores == 1
    assert marks[0].state == "erased" and marks[0].erase_reason == "invalidated"
    assert slot.live_checkpoints == 1
    monitor.feed_lines(["0.07.000.000 I srv  update_slots: all slots are idle"])
    idle = monitor.slot_tracker.get(1)
    assert idle is not None and idle.phase == "idle" and not idle.busy


def test_server_facts_from_startup_lines() -> None:
    facts = monitor_for("reference_b11434.log").snapshot().facts
    assert facts.model == "tiny.gguf" and facts.build == 0
    assert (facts.n_slots, facts.n_ctx_slot, facts.kv_unified) == (4, 131072, True)
    assert (facts.n_ctx, facts.n_ctx_seq, facts.n_seq_max, facts.n_ctx_train) == (8192, 4096, 2, 131072)
    assert facts.buffer_mib("kv", "CUDA0") == 2048.0 and facts.buffer_mib("compute") == 309.14
    assert facts.kv_cache_mib == 2050.0
    assert any("capped" in w for w in facts.warnings)
    assert facts.state == "stopped" and facts.load_error is not None
    older = monitor_for("older_build.log").snapshot().facts
    assert (older.build, older.commit, older.n_ctx_train, older.n_slots, older.n_ctx_slot) == (
        4567,
        "abc1234d",
        32768,
        4,
        16384,
    )
    assert older.url == "http://127.0.0.1:8080" and older.flash_attn == "1"


def test_history_is_bounded() -> None:
    timeline = Timeline(max_requests=10)
    monitor = LogMonitor()
    monitor.timeline = timeline
    lines = []
    for task in range(100):
        lines += [
            f"slot launch_slot_: id  0 | task {task} | processing task",
            f"slot      release: id  0 | task {task} | stop processing: n_tokens = {task}, truncated = 0",
        ]
    monitor.feed_lines(lines)
    requests = timeline.requests()
    assert [r.task for r in requests] == list(range(90, 100))
    assert len(timeline._by_task) <= 64 + 1
    assert monitor.snapshot(last_requests=3).requests[-1].task == 99


def test_restart_resets_in_flight_requests_and_slots() -> None:
    monitor = LogMonitor()
    monitor.feed_lines(
        [
            "slot launch_slot_: id  0 | task 7 | processing task",
            "srv    load_model: loading model 'other.gguf'",
            "slot launch_slot_: id  0 | task 7 | processing task",
            "slot      release: id  0 | task 7 | stop processing: n_tokens = 3, truncated = 0",
        ]
    )
    first, second = monitor.timeline.requests()
    assert first.done and first.released_tokens is None
    assert second.released_tokens == 3
    assert monitor.snapshot().facts.model == "other.gguf"


def test_clock_anchor_takes_the_freshest_line_and_resets_on_restart() -> None:
    monitor = LogMonitor()
    monitor.feed_lines(["0.00.010.000 I srv  llama_server: initializing ..."], arrived=1000.5)  # read late
    assert monitor.clock_offset == 1000.49
    monitor.feed_lines(["0.30.000.000 I srv  update_slots: all slots are idle"], arrived=1030.0)  # live
    assert monitor.clock_offset == 1000.0
    assert monitor.wall_time(5.0) == 1005.0 and monitor.snapshot().wall_time(2.0) == 1002.0
    monitor.feed_lines(["0.00.001.000 I srv  llama_server: initializing ..."], arrived=2000.0)  # new process
    assert monitor.clock_offset == 1999.999
    assert monitor.wall_time(None) is None
