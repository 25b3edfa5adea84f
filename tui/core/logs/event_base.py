"""The base of every log event: where it came from, when, the raw line, and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


@dataclass(frozen=True, slots=True)
class LogEvent:
    """Fields every event has: where it came from (slot/task), when (log elapsed seconds) and the raw line."""

    kind: ClassVar[str] = "event"

    ts: float | None
    level: str | None
    slot: int | None
    task: int | None
    line: str

    def to_json(self, include_line: bool = True) -> dict[str, Any]:
        """Plain-JSON form: {"kind": ..., slot, task, ts, level, typed fields (numbers as numbers), line}."""
        cls = type(self)
        names = _FIELD_NAMES.get(cls)
        if names is None:
            ordered = [f.name for f in fields(cls) if f.name != "line"]
            names = (ordered[2], ordered[3], ordered[0], ordered[1], *ordered[4:], "line")
            _FIELD_NAMES[cls] = names
        out: dict[str, Any] = {"kind": cls.kind}
        for name in names:
            if name == "line" and not include_line:
                continue
            out[name] = getattr(self, name)
        return out


def install_fast_init(cls: type[LogEvent]) -> None:
    """Replace the frozen dataclass __init__ with one that sets slots through their descriptors.

    Why: the parser builds 100k+ events/s and the generated frozen __init__ goes through
    object.__setattr__ for every field (about 40% slower); immutability afterwards is unchanged.
    """
    names = [f.name for f in fields(cls)]
    setters: dict[str, Any] = {}
    for name in names:
        owner = next(k for k in cls.__mro__ if name in k.__dict__)
        setters[f"_set_{name}"] = owner.__dict__[name].__set__
    body = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    namespace: dict[str, Any] = {}
    exec(f"def __init__(self, {', '.join(names)}):\n{body}", setters, namespace)  # noqa: S102
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    type.__setattr__(cls, "__init__", init)
