"""`ctxbudget parse-log`: plain and JSON output, missing files, and --follow on a growing file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tui.cli import main

DATA = Path(__file__).parent / "data" / "logs"
REFERENCE = DATA / "reference_b11434.log"


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.toml").write_text("")
    monkeypatch.setenv("CTXBUDGET_CONFIG", str(tmp_path / "empty.toml"))


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["parse-log", str(tmp_path / "nope.log")])
    err = capsys.readouterr().err
    assert rc == 1 and "no such file" in err and "nope.log" in err


def test_json_output_one_object_per_line_then_task_summaries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-log", str(REFERENCE), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    events = [r for r in rows if r["kind"] != "task_summary"]
    summaries = [r for r in rows if r["kind"] == "task_summary"]
    assert len(events) == len(REFERENCE.read_text().splitlines())
    assert rows[-len(summaries) :] == summaries  # summaries come last
    timing = next(r for r in events if r["kind"] == "timing")
    assert isinstance(timing["ms"], float) and isinstance(timing["tokens"], int) and timing["task"] == 12
    assert {s["task"] for s in summaries} == {12, 1, 10}
    big = next(s for s in summaries if s["task"] == 12)
    assert big["prompt_tokens"] == 2949 and big["checkpoints_created"] == 1


def test_plain_output_has_events_and_a_summary_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-log", str(DATA / "older_build.log"), "--no-raw"]) == 0
    out = capsys.readouterr().out
    assert "slot_released" in out and " raw " not in out
    table = out[out.index("task(s)") :].splitlines()
    assert table[0] == "2 task(s)" or table[0].endswith("task(s)")
    assert "prompt" in table[1] and "reused" in table[1]
    assert any(line.split()[:2] == ["3", "190"] and "truncated" in line for line in table[2:])


def test_summary_only(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse-log", str(REFERENCE), "--summary-only"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "3 task(s)" and len(out) == 5


def test_follow_prints_new_lines_and_the_summary_on_interrupt(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("0.00.000.001 I srv  llama_server: initializing ...\n")
    env = {**os.environ, "CTXBUDGET_CONFIG": str(tmp_path / "empty.toml")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tui", "parse-log", str(log), "--follow", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["kind"] == "raw" and first["message"] == "initializing ..."
        with open(log, "a") as fh:
            fh.write("0.01.000.000 I slot launch_slot_: id  0 | task 3 | processing task, is_child = 0\n")
            fh.write("0.01.000.100 I slot      release: id  0 | task 3 | stop processing: n_tokens = 9, ")
            fh.flush()
            time.sleep(0.3)
            fh.write("truncated = 0\n")  # a partial line finished later
        got = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [g["kind"] for g in got] == ["task_launched", "slot_released"]
        assert got[1]["n_tokens"] == 9
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    summary = [json.loads(line) for line in out.splitlines()]
    assert proc.returncode in (0, 130), err
    assert summary and summary[-1]["kind"] == "task_summary" and summary[-1]["released_tokens"] == 9


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["text", "json"])
def test_a_closed_pipe_is_not_an_error(tmp_path: Path, json_flag: list[str]) -> None:
    """`parse-log BIG | head -1`: the reader goes away early; exit 0, nothing on stderr."""
    big = tmp_path / "big.log"
    big.write_text(REFERENCE.read_text() * 300)
    head = subprocess.Popen(["head", "-1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    parse = subprocess.run(
        [sys.executable, "-m", "tui", "parse-log", str(big), *json_flag],
        stdout=head.stdin, stderr=subprocess.PIPE, text=True, timeout=60,
    )
    assert head.stdin is not None and head.stdout is not None
    head.stdin.close()
    first = head.stdout.read()
    head.wait(timeout=10)
    assert first.strip() and parse.returncode == 0 and parse.stderr == ""
