"""The raw-bytes billing stabilizer gives the same request as parsing and running the stabilizer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from builders import cc_request

from tui.core.actions.mcp_switch import McpSwitchStore
from tui.core.control.transform_state import TransformSwitchStore
from tui.core.proxy.rewrite import RequestRewriter
from tui.core.transforms import TransformPipeline, TransformSettings


def hook(tmp_path: Path, settings: TransformSettings) -> RequestRewriter:
    return RequestRewriter(
        settings,
        (),
        McpSwitchStore(tmp_path / "m.json"),
        TransformSwitchStore(settings.enabled, tmp_path / "t.json"),
    )


def slow(body: dict[str, Any], settings: TransformSettings) -> dict[str, Any]:
    out, _ = TransformPipeline(settings).run(body, "anthropic", ("stabilize",))
    return out


BILLING = "x-anthropic-billing-header: cc_version=2.1.197.9e1; cc_entrypoint=cli; cch=a1b2c;"
CASES = {
    "claude-code": cc_request(billing=BILLING),
    "system-string-with-newline": {
        "model": "m",
        "system": BILLING + "\nYou are a helpful agent.",
        "messages": [{"role": "user", "content": "hi"}],
    },
    "header-after-a-newline": {
        "model": "m",
        "system": "intro\n" + BILLING,
        "messages": [{"role": "user", "content": "hi"}],
    },
    "only-cch": {
        "model": "m",
        "system": [{"type": "text", "text": "x-anthropic-billing-header: cch=zz9;"}],
        "messages": [{"role": "user", "content": "hi"}],
    },
    "no-match-mid-line": {
        "model": "m",
        "system": "see x-anthropic-billing-header: cch=zz9;",
        "messages": [{"role": "user", "content": "x"}],
    },
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("builtins", [["cc_billing_version", "cc_billing_cch"], ["cc_billing_cch"]])
def test_bytes_path_equals_parsed_path(tmp_path: Path, name: str, builtins: list[str]) -> None:
    settings = TransformSettings(enabled=["stabilize"], stabilizer_builtins=builtins)
    body = CASES[name]
    raw = orjson.dumps(body)
    out, note = hook(tmp_path, settings).process("POST", "/v1/messages?beta=true", {}, raw)
    expected = slow(body, settings)
    assert orjson.loads(out) == expected
    assert note is not None and note.transforms == ("stabilize",)
    if expected == body:
        assert out is raw and note.changed == ()
    else:
        assert note.changed == ("stabilize",) and note.transform_input == raw


def test_a_second_copy_of_the_line_outside_system_is_left_alone(tmp_path: Path) -> None:
    settings = TransformSettings()
    body = cc_request(billing=BILLING)
    body["messages"][0]["content"][-1]["text"] = BILLING  # pasted by the user: not the system prompt
    raw = orjson.dumps(body)
    out, _ = hook(tmp_path, settings).process("POST", "/v1/messages", {}, raw)
    forwarded = orjson.loads(out)
    assert forwarded == slow(body, settings)
    assert forwarded["messages"][0]["content"][-1]["text"] == BILLING
    assert "cch=00000" in forwarded["system"][0]["text"]
