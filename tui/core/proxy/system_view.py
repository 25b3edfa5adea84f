"""The top-level `system` of a request body, read without building the rest of the body's tree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import simdjson

_MISSING = object()
# A parser keeps buffers sized for the largest body it saw: bigger bodies get one of their own, dropped after.
REUSED_PARSER_MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class SystemView:
    """What a valid JSON object body holds under its one top-level `system` key (absent: `present` False)."""

    present: bool
    system: Any = None

    def as_body(self) -> dict[str, Any]:
        """A body holding only the system prompt, for transforms whose scope is the system prompt."""
        return {"system": self.system} if self.present else {}


class SystemReader:
    """Validates a whole body (JSON syntax, UTF-8, 64-bit numbers) and builds only its `system` value.

    simdjson's lazy document: on a 150 KB Claude Code body about 20 µs, against 70-100 µs for a full
    orjson tree (and the GC work that tree costs once dropped). One parser is reused for bodies up to
    4 MiB; its document is dropped before returning, as the next parse requires.
    """

    def __init__(self) -> None:
        self._parser = simdjson.Parser()

    def read(self, body: bytes) -> SystemView | None:
        """The body's system prompt; None when the body is not a JSON object with unique top-level keys
        (or not JSON at all): the caller parses it fully instead."""
        try:
            return self._read(body)
        except RuntimeError:  # a document still referenced (an earlier failure): start a new parser
            self._parser = simdjson.Parser()
        except ValueError:  # invalid JSON or UTF-8 (UnicodeDecodeError is a ValueError)
            pass
        return None

    def _read(self, body: bytes) -> SystemView | None:
        parser = self._parser if len(body) <= REUSED_PARSER_MAX_BYTES else simdjson.Parser()
        doc = parser.parse(body)
        try:
            if not isinstance(doc, simdjson.Object):
                return None
            keys = list(doc.keys())
            if len(set(keys)) != len(keys):  # duplicate keys: parsers disagree on which one counts
                return None
            value = doc.get("system", _MISSING)
            if value is _MISSING:
                return SystemView(False)
            if isinstance(value, simdjson.Array):
                value = value.as_list()
            elif isinstance(value, simdjson.Object):
                value = value.as_dict()
            return SystemView(True, value)
        finally:
            del doc
