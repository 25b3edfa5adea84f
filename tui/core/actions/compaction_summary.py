"""Ask the upstream model for a summary of a conversation prefix and build the Compaction from it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tui.core.actions.compaction import (
    SYSTEM_ROLES,
    Compaction,
    CompactionError,
    choose_cut,
    folded_text,
    message_hash,
    message_text,
    replacement_messages,
)
from tui.core.actions.counting import count_texts
from tui.core.tokens import TokenCounter

if TYPE_CHECKING:
    import httpx  # imported when a summary is asked for: the proxy process starts without it

SUMMARY_SYSTEM = (
    "You compress the history of a coding session so that the assistant can continue it without "
    "the full transcript."
)
SUMMARY_INSTRUCTION = (
    "Summarise the conversation above for the assistant that will continue it. Keep: the user's goals "
    "and constraints, decisions taken, files and functions read or changed, commands run and their "
    "outcomes, errors still open, and the next steps. Be concise; use short bullet points."
)
FOCUS_INSTRUCTION = "Focus the summary on what the user asked to keep: "
DEFAULT_MAX_TOKENS = 1024  # the smallest summary budget; longer prefixes get more (summary_budget)
MAX_SUMMARY_TOKENS = 8192
SUMMARY_SHARE = 8  # a summary may use up to 1/8 of the prefix it replaces
CHARS_PER_TOKEN = 3
BLOCK_CHARS = 4000
TRANSCRIPT_CHARS = 200_000


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters left out ...]\n{text[-half:]}"


def render_transcript(
    messages: Sequence[Any], block_chars: int = BLOCK_CHARS, total_chars: int = TRANSCRIPT_CHARS
) -> str:
    """A plain-text transcript of the messages, long blocks clipped, oldest text dropped beyond the cap."""
    lines: list[str] = []
    for message in messages:
        if not isinstance(message, dict) or message.get("role") in SYSTEM_ROLES:
            continue
        text = message_text(message)
        if text:
            lines.append(f"## {message.get('role', '?')}\n{_clip(text, block_chars)}")
    transcript = "\n\n".join(lines)
    if len(transcript) > total_chars:
        transcript = "[... earlier part left out ...]\n" + transcript[-total_chars:]
    return transcript


@dataclass(frozen=True)
class SummaryCall:
    """The request that asks the upstream model for a summary."""

    path: str
    body: dict[str, Any]


def summary_instruction(focus: str = "") -> str:
    """The instruction after the transcript; a focus asks the summary to keep that in view above all."""
    focus = " ".join(focus.split())
    if not focus:
        return SUMMARY_INSTRUCTION
    return f"{SUMMARY_INSTRUCTION}\n\n{FOCUS_INSTRUCTION}{focus}"


def summary_call(
    dialect: str, model: str, transcript: str, max_tokens: int = DEFAULT_MAX_TOKENS, focus: str = ""
) -> SummaryCall:
    """Non-streaming summary request in the conversation's own dialect."""
    prompt = f"<conversation>\n{transcript}\n</conversation>\n\n{summary_instruction(focus)}"
    common: dict[str, Any] = {
        "model": model or "default",
        "max_tokens": max_tokens,
        "stream": False,
        "temperature": 0.2,
        # Thinking models would spend the budget on reasoning; llama-server passes this to the template.
        "chat_template_kwargs": {"enable_thinking": False},
    }
    if dialect == "anthropic":
        body = {**common, "system": SUMMARY_SYSTEM, "messages": [{"role": "user", "content": prompt}]}
        return SummaryCall("/v1/messages", body)
    messages = [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": prompt}]
    return SummaryCall("/v1/chat/completions", {**common, "messages": messages})


def parse_summary(dialect: str, status: int, text: str) -> str:
    """The summary text from the upstream answer; CompactionError with the server's message otherwise."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CompactionError(f"summary request: HTTP {status}, not JSON: {text[:200]!r}") from exc
    if status != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else str(data)[:300]
        raise CompactionError(f"summary request failed: HTTP {status}: {message}")
    if dialect == "anthropic":
        blocks = [b for b in data.get("content") or [] if isinstance(b, dict)]
        summary = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
        if not summary.strip():
            summary = "".join(str(b.get("thinking", "")) for b in blocks if b.get("type") == "thinking")
        return summary
    choices = data.get("choices") or [{}]
    message = choices[0].get("message", {}) if isinstance(choices[0], dict) else {}
    return str(message.get("content") or message.get("reasoning_content") or "")


def summary_was_cut(dialect: str, text: str) -> bool:
    """Whether the model stopped at the summary's token budget (Anthropic max_tokens, OpenAI length)."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    if not isinstance(data, dict):
        return False
    if dialect == "anthropic":
        return data.get("stop_reason") == "max_tokens"
    choices = data.get("choices") or [{}]
    return isinstance(choices[0], dict) and choices[0].get("finish_reason") == "length"


@dataclass(frozen=True)
class CompactionPlan:
    """A conversation split at a turn boundary, ready to be summarised."""

    session_id: str
    dialect: str
    model: str
    keep_turns: int
    prefix: tuple[dict[str, Any], ...]
    call: SummaryCall
    focus: str = ""
    folded: str = ""  # the prefix as the client's bytes held it (see compaction.folded_text)
    folded_exact: bool = False


def transcript_budget(context_tokens: int, max_tokens: int) -> int:
    """Characters of transcript that fit the server's per-slot context (about 3 characters per token)."""
    if context_tokens <= 0:
        return TRANSCRIPT_CHARS
    return max(2000, (context_tokens - max_tokens - 512) * CHARS_PER_TOKEN)


def summary_budget(prefix_tokens: int, context_tokens: int = 0) -> int:
    """Tokens the summary may generate: 1/8 of the prefix, between 1,024 and 8,192, at most 1/4 of the slot.

    A fixed 1,024 cut the summary of a 28k-token prefix off mid-sentence.
    """
    budget = min(max(prefix_tokens // SUMMARY_SHARE, DEFAULT_MAX_TOKENS), MAX_SUMMARY_TOKENS)
    if context_tokens > 0:
        budget = min(budget, max(context_tokens // 4, 256))
    return budget


def plan_compaction(
    body: dict[str, Any],
    dialect: str,
    session_id: str,
    keep_turns: int,
    max_tokens: int | None = None,
    context_tokens: int = 0,
    *,
    focus: str = "",
    raw: bytes | None = None,
) -> CompactionPlan:
    """Choose the cut and build the summary request (pure; no I/O).

    `context_tokens` is the server's per-slot context when known: the transcript is trimmed to fit it.
    `max_tokens` None scales the summary's budget to the prefix (summary_budget).
    `focus` goes into the summary instruction; `raw` (the client's bytes of `body`) gives the folded
    messages' exact text, kept so the journal holds what the compaction took out.
    """
    if dialect not in ("anthropic", "openai"):
        raise CompactionError(f"unknown dialect {dialect!r}: expected anthropic or openai")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise CompactionError("the request has no messages to compact")
    cut = choose_cut(messages, dialect, keep_turns)
    prefix = tuple(messages[:cut])
    model = str(body.get("model", ""))
    if max_tokens is None:
        prefix_chars = sum(len(message_text(m)) for m in prefix)
        max_tokens = summary_budget(prefix_chars // CHARS_PER_TOKEN, context_tokens)
    transcript = render_transcript(prefix, total_chars=transcript_budget(context_tokens, max_tokens))
    call = summary_call(dialect, model, transcript, max_tokens, focus)
    folded, exact = folded_text(raw, cut, messages)
    return CompactionPlan(session_id, dialect, model, keep_turns, prefix, call, focus.strip(), folded, exact)


def finish_compaction(
    plan: CompactionPlan, summary: str, counter: TokenCounter | None = None, summary_cut: bool = False
) -> Compaction:
    """The Compaction for a plan once the summary is known, with tokens before and after."""
    replacement = replacement_messages(plan.prefix, summary)
    old = [message_text(m) for m in plan.prefix if m.get("role") not in SYSTEM_ROLES]
    new = [message_text(m) for m in replacement if m.get("role") not in SYSTEM_ROLES]
    counts = count_texts([*old, *new], counter)
    prefix_tokens = sum(counts.values[: len(old)])
    summary_tokens = sum(counts.values[len(old) :])
    return Compaction(
        session_id=plan.session_id,
        dialect=plan.dialect,
        prefix_hashes=tuple(message_hash(m) for m in plan.prefix),
        replacement=tuple(replacement),
        summary=summary,
        prefix_tokens=prefix_tokens,
        summary_tokens=summary_tokens,
        counter=counts.counter,
        exact=counts.exact,
        keep_turns=plan.keep_turns,
        model=plan.model,
        summary_cut=summary_cut,
        focus=plan.focus,
        folded=plan.folded,
        folded_exact=plan.folded_exact,
    )


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


async def compact_async(
    body: dict[str, Any],
    dialect: str,
    session_id: str,
    *,
    upstream: str,
    keep_turns: int = 2,
    api_key: str = "",
    counter: TokenCounter | None = None,
    client: httpx.AsyncClient | None = None,
    max_tokens: int | None = None,
    context_tokens: int = 0,
    timeout: float = 600.0,
    focus: str = "",
    raw: bytes | None = None,
) -> Compaction:
    """Summarise all but the last `keep_turns` turns with the upstream model itself, aimed at `focus`."""
    plan = plan_compaction(
        body, dialect, session_id, keep_turns, max_tokens, context_tokens, focus=focus, raw=raw
    )
    url = upstream.rstrip("/") + plan.call.path
    import httpx

    own = client is None
    http = client or httpx.AsyncClient(timeout=timeout)
    try:
        response = await http.post(url, json=plan.call.body, headers=_headers(api_key))
    except httpx.HTTPError as exc:
        raise CompactionError(f"summary request to {url} failed: {exc}") from exc
    finally:
        if own:
            await http.aclose()
    summary = parse_summary(dialect, response.status_code, response.text)
    # Counting may call the server synchronously: keep it off the event loop.
    cut = summary_was_cut(dialect, response.text)
    return await asyncio.to_thread(finish_compaction, plan, summary, counter, cut)
