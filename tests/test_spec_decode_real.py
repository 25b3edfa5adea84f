"""Speculative decoding against the real llama-server: a tiny target and a tiny draft sharing one vocab.

b11434 reports draft acceptance three ways, all read here: /metrics `spec_decode_num_*_total`, the
OpenAI response's timings `draft_n` / `draft_n_accepted`, and the log's per-task print_timing line
"draft acceptance = 0.83333 (   45 accepted /    54 generated), mean len =  3.50".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support.llama import RunningServer, StartServer
from support.tiny_models import write_dense_model
from test_control_api import Proxy, StartProxy, start_proxy  # noqa: F401 - the fixture is used by name

from tui.core.feed.timings import needs_timings, with_timings
from tui.core.feed.views import RequestHistory
from tui.core.logs import events as ev
from tui.core.logs.parse import parse_text
from tui.core.logs.timeline import Timeline
from tui.core.poll.server_poller import ServerPoller
from tui.core.report.render import headline
from tui.core.report.summary import summarize

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]


@pytest.fixture
def draft_server(llama_server: StartServer, tiny_model: Path, tmp_path: Path) -> RunningServer:
    draft = write_dense_model(tmp_path / "draft.gguf", name="tiny-draft")  # same vocab as tiny_model
    return llama_server(tiny_model, extra_args=["-md", str(draft), "--spec-type", "draft-simple"])


def chat(max_tokens: int = 48) -> dict[str, object]:
    return {
        "model": "m",
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,  # the tiny model would stop early; drafts need tokens to draft
        "messages": [{"role": "user", "content": "count the handlers in this file please"}],
    }


async def test_draft_acceptance_from_metrics_timings_and_log(
    draft_server: RunningServer, start_proxy: StartProxy  # noqa: F811 - the imported fixture
) -> None:
    poller = ServerPoller(draft_server.url, interval=0.1)
    try:
        before = await poller.poll_once()
        assert before.metrics is not None and before.metrics.spec_acceptance_avg is None

        proxy: Proxy = await start_proxy(draft_server.url)
        openai = await proxy.send(chat(), path="/v1/chat/completions")
        anthropic = await proxy.send(chat())
        after = await poller.poll_once()
    finally:
        await poller.aclose()

    metrics = after.metrics
    assert metrics is not None and metrics.spec_draft_tokens_total > 0 and metrics.spec_drafts_total > 0
    assert metrics.spec_acceptance is not None and 0 < metrics.spec_acceptance <= 1
    assert metrics.spec_acceptance_avg == pytest.approx(
        metrics.spec_accepted_tokens_total / metrics.spec_draft_tokens_total
    )

    # OpenAI responses carry the counts in their timings; Anthropic ones do not: the log has them.
    assert openai.usage.draft_tokens and openai.usage.draft_accepted is not None
    assert anthropic.usage.draft_tokens is None and needs_timings(anthropic)
    events = await asyncio.to_thread(lambda: parse_text(draft_server.log_text()))
    drafts = [e for e in events if isinstance(e, ev.DraftAcceptance)]
    assert len(drafts) == 2
    assert sum(d.generated for d in drafts) == metrics.spec_draft_tokens_total
    assert sum(d.accepted for d in drafts) == metrics.spec_accepted_tokens_total
    first, second = drafts
    assert (first.generated, first.accepted) == (openai.usage.draft_tokens, openai.usage.draft_accepted)

    timeline = Timeline()
    timeline.feed_many(events)
    joined = with_timings(anthropic, reversed(timeline.requests(8)), set())
    assert joined is not None
    assert (joined.usage.draft_tokens, joined.usage.draft_accepted) == (second.generated, second.accepted)

    history = RequestHistory()
    history.add([openai, joined])
    series = history.series()
    assert series.draft_pct == tuple(100.0 * r.usage.draft_acceptance for r in (openai, joined))  # type: ignore[operator]

    summary = summarize([openai, joined])
    assert summary.draft_requests == 2
    assert summary.draft_tokens == metrics.spec_draft_tokens_total
    assert summary.to_json()["speculative"]["acceptance"] == pytest.approx(metrics.spec_acceptance_avg)
    (line,) = [x for x in headline(summary) if x.startswith("Speculative decoding")]
    assert f"of {summary.draft_tokens:,} drafted tokens accepted over 2 requests" in line


def test_no_draft_model_no_speculative_lines(shared_llama_server: RunningServer) -> None:
    events = parse_text(shared_llama_server.log_text())
    assert not [e for e in events if isinstance(e, ev.DraftAcceptance)]
    assert not [x for x in headline(summarize([])) if x.startswith("Speculative")]
