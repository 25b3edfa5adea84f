"""The dashboard's proxy child never blocks on a dashboard that stops reading its notices."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from tui.core.feed import proxy_child
    os.set_blocking(sys.stdout.fileno(), False)
    started = time.monotonic()
    for i in range(20000):
        proxy_child.notify(row=i)
    proxy_child.notify(problem="x\\x1b" * 5000)
    sys.stderr.write(f"done {time.monotonic() - started:.3f}\\n")
    """
)


def test_notices_are_dropped_not_blocking_when_the_dashboard_stops_reading() -> None:
    # Nobody reads the child's stdout until it has finished: 20,000 notices overflow any pipe buffer.
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stderr is not None and proc.stdout is not None
        finished = proc.stderr.readline().decode()
        assert finished.startswith("done"), finished
        lines = proc.stdout.read().splitlines()
    finally:
        proc.kill()
        proc.wait()
    rows = [json.loads(line)["row"] for line in lines if line.startswith(b'{"row"')]
    assert 0 < len(rows) < 20000  # some fitted, the rest were dropped instead of waiting
    assert rows == sorted(rows) and all(line.endswith(b"}") for line in lines)  # whole lines only


LONG_PROBLEM = "from tui.core.feed import proxy_child; proxy_child.notify(problem='\\x1b' * 5000)"


def test_long_problem_text_stays_one_whole_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", LONG_PROBLEM],
        capture_output=True, timeout=30, check=True,
    )
    (line,) = proc.stdout.splitlines()
    assert len(line) < 4096
    assert json.loads(line)["problem"] == "\x1b" * 600
