"""Router mode's log: which child (by its `[port]` prefix) wrote a line, and which model each port serves.

A b11434 router (`--models-dir` / `--models-preset`) copies each model's child server's log lines into its
own log prefixed with the child's port, e.g. `[46001] 0.00.101.415 I slot print_timing: id  1 | task 0 |
...`, and says which model a port serves in its own lines: `load: spawning server instance with
name=alpha on port 46001` and `proxy_reques: proxying request to model alpha on port 46001`. The port is
also in each model's command line in GET /models (`--port 46001`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_CHILD_RE = re.compile(r"\[(\d{1,5})\] ?(.*)", re.DOTALL)
_PORT_OF_MODEL_RE = re.compile(
    r"(?:spawning server instance with name=|proxying request to model )(\S+) on port (\d{1,5})\b"
)


def split_child(line: str) -> tuple[int | None, str]:
    """(the child's port, the line without its prefix); (None, line) for the router's own lines."""
    match = _CHILD_RE.match(line)
    if match is None:
        return None, line
    return int(match.group(1)), match.group(2)


def port_from_args(args: Iterable[str]) -> int | None:
    """The `--port N` of a child's command line (GET /models `status.args`), or None."""
    items = list(args)
    for flag, value in zip(items, items[1:], strict=False):
        if flag == "--port" and value.isdigit():
            return int(value)
    return None


class RouterPorts:
    """Port → model, learnt from the router's own lines and from GET /models."""

    def __init__(self) -> None:
        self.models: dict[int, str] = {}
        self.generation = 0

    def note_line(self, line: str) -> None:
        """A router line: learn the port it names for a model (a reload may move a model to a new port)."""
        match = _PORT_OF_MODEL_RE.search(line)
        if match is not None:
            self.set(int(match.group(2)), match.group(1))

    def set(self, port: int, model: str) -> None:
        """One mapping (a port a new model took over no longer serves the old one)."""
        if self.models.get(port) != model:
            self.models[port] = model
            self.generation += 1

    def port_of(self, model: str, ports: Iterable[int]) -> int | None:
        """The newest of `ports` (in the given order) that serves `model`, or None."""
        found = None
        for port in ports:
            if self.models.get(port) == model:
                found = port
        return found
