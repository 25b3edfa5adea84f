"""Parse once, transform once: the worker counts savings from the hot path's note, never re-transforming."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from corpus_builders import corpus
from support.rewriters import make_rewriter

import tui.core.transforms.pipeline as pipeline_module
from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.analysis.capture import Capture
from tui.core.analysis.savings import savings_for
from tui.core.analysis.sinks import CaptureProcessor
from tui.core.anatomy.analyze import Analyzer
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.proxy.rewrite import RequestRewriter
from tui.core.records import TransformSaving
from tui.core.tokens import TiktokenCounter
from tui.core.transforms.pipeline import measure_savings
from tui.core.transforms.registry import TRANSFORM_ORDER
from tui.core.transforms.settings import TransformSettings

CORPUS = corpus()
COUNTER = TiktokenCounter()
PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


def hook(tmp_path: Path, enabled: list[str], off: tuple[str, ...] = ()) -> RequestRewriter:
    settings = TransformSettings(enabled=enabled)
    mcp = McpSwitchStore(tmp_path / "mcp.json")
    for server in off:
        mcp.set_enabled(server, False)
    return make_rewriter(
        settings, ("filesystem", "github"), mcp, TransformSwitchStore(enabled, tmp_path / "t.json")
    )


@pytest.mark.parametrize("item", CORPUS, ids=lambda c: c.name)
def test_savings_from_the_note_equal_a_full_recount(tmp_path: Path, item: Any) -> None:
    enabled = list(TRANSFORM_ORDER)
    out, note = hook(tmp_path, enabled).process("POST", PATHS[item.dialect], {}, orjson.dumps(item.body))
    assert note is not None
    _, measured = measure_savings(item.body, item.dialect, COUNTER, enabled)
    savings = savings_for(note, COUNTER, orjson.loads(out))
    assert savings is not None
    expected = tuple(
        TransformSaving(m.name, m.tokens_before, m.tokens_after) if m.changed else TransformSaving(m.name)
        for m in measured
    )
    assert savings.transforms == expected
    assert savings.transform_saved_tokens == sum(m.saved for m in measured if m.changed)


def test_the_worker_parses_the_body_once_and_runs_no_transform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = CORPUS[0]
    out, note = hook(tmp_path, list(TRANSFORM_ORDER), off=("filesystem",)).process(
        "POST", PATHS[item.dialect], {}, orjson.dumps(item.body)
    )
    assert note is not None and note.changed and note.mcp_removed
    capture = Capture("POST", PATHS[item.dialect], [("content-type", "application/json")], out, time.time())
    capture.rewrite = note
    capture.status = 200
    loads = orjson.loads
    parsed: list[int] = []
    runs: list[str] = []

    def counting_loads(data: Any) -> Any:
        parsed.append(len(data))
        return loads(data)

    def no_run(*args: Any, **kwargs: Any) -> Any:
        runs.append("run")
        raise AssertionError("the worker must not run the transforms")

    monkeypatch.setattr(orjson, "loads", counting_loads)
    monkeypatch.setattr(pipeline_module.TransformPipeline, "run", no_run)
    record = CaptureProcessor(None, lambda: Analyzer(COUNTER, ("filesystem", "github"))).process(capture)
    # One parse of the body; the only other one is the small metadata.user_id JSON (the session id).
    assert runs == [] and parsed.count(len(out)) == 1 and all(n < 1024 for n in parsed if n != len(out))
    assert record.anatomy is not None and record.mcp_saved_tokens
    assert record.transform_saved_tokens is not None and record.transform_saved_tokens > 1000
    assert [t.name for t in record.transforms] == list(TRANSFORM_ORDER)
