"""Keep the prompt cache across a restart: which slots hold a prompt, whether the new launch can take them
back, and llama-server's slot save/restore calls."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from tui.core.actions.server_errors import ServerControlError
from tui.core.config import APP_NAME

CACHE_DIR_ENV = "CTXBUDGET_CACHE_DIR"
SLOT_SAVE_FLAG = "--slot-save-path"
SWA_FULL_FLAG = "--swa-full"
UNIFIED_FLAGS = ("--kv-unified", "-kvu")
FILE_PREFIX = "ctxbudget-slot"
SAVE_TIMEOUT = 600.0  # a 56k-token slot of a big model is gigabytes on disk


class SlotCacheError(ServerControlError):
    """The slot cache cannot be saved or restored; the message says why."""


def slot_save_dir() -> Path:
    """Where servers we launch save slots: <user cache dir>/slots ($CTXBUDGET_CACHE_DIR sets the root)."""
    root = os.environ.get(CACHE_DIR_ENV) or platformdirs.user_cache_dir(APP_NAME)
    return Path(root).expanduser() / "slots"


def ensure_slot_save_dir() -> Path:
    """The slot save dir, created owner-only (a slot file holds the prompt's KV, i.e. the conversation)."""
    path = slot_save_dir()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value after `flag` in a command line (also `flag=value`), None when absent."""
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


@dataclass(frozen=True)
class SlotInfo:
    """One slot as GET /slots shows it: its context size and how many tokens its cache holds."""

    id: int
    n_ctx: int
    n_tokens: int
    busy: bool


@dataclass(frozen=True)
class SavedSlot:
    """A slot written to disk by POST /slots/{id}?action=save."""

    id: int
    filename: str
    n_saved: int


@dataclass(frozen=True)
class CachePlan:
    """What a keep-cache restart will save, or why it cannot keep the cache (decided before acting)."""

    slots: tuple[SlotInfo, ...]
    refusal: str = ""
    empty: str = ""  # why there is nothing to keep (no server, no slot with a prompt)

    @property
    def tokens(self) -> int:
        """Tokens held by the slots to save."""
        return sum(slot.n_tokens for slot in self.slots)


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _error_text(response: Any) -> str:
    try:
        data = response.json()
        message = (data.get("error") or {}).get("message") if isinstance(data, dict) else None
    except ValueError:
        message = None
    return str(message or response.text[:200] or f"HTTP {response.status_code}")


def read_slots(url: str, api_key: str = "") -> tuple[SlotInfo, ...]:
    """GET /slots as SlotInfo; raises SlotCacheError when the server does not list its slots."""
    import httpx  # deferred: the dashboard imports this module at start

    try:
        response = httpx.get(url + "/slots", headers=_headers(api_key), timeout=5.0)
    except httpx.HTTPError as exc:
        raise SlotCacheError(f"GET {url}/slots failed: {exc}") from exc
    if response.status_code != 200:
        raise SlotCacheError(f"GET {url}/slots answered {response.status_code}: {_error_text(response)}")
    data = response.json()
    if not isinstance(data, list):
        raise SlotCacheError(f"GET {url}/slots did not answer a list")
    return tuple(
        SlotInfo(
            int(item.get("id", index)),
            int(item.get("n_ctx") or 0),
            int(item.get("n_prompt_tokens") or 0),
            bool(item.get("is_processing")),
        )
        for index, item in enumerate(data)
        if isinstance(item, dict)
    )


def planned_slot_ctx(args: Sequence[str], ctx_size: int, parallel: int) -> int | None:
    """Per-slot context of a planned launch, None when the server decides it (ctx_size 0 = auto)."""
    if ctx_size <= 0:
        return None
    if any(flag in args for flag in UNIFIED_FLAGS):
        return ctx_size
    return ctx_size // max(parallel, 1)


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(Path(a).expanduser(), Path(b).expanduser())
    except OSError:
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def sliding_window_note(model: str) -> str:
    """'window N on K of L layers' for a sliding-window model, '' otherwise (or when unreadable)."""
    from tui.core.gguf.reader import GgufError, read_gguf_info

    try:
        info = read_gguf_info(model)
    except (GgufError, OSError):
        return ""
    if not any(info.swa):
        return ""
    return f"window {info.n_swa} on {sum(info.swa)} of {info.n_layer} layers"


def refusal_reason(
    slots: Sequence[SlotInfo],
    *,
    running_model: str,
    running_args: Sequence[str] | None,
    new_model: str,
    new_args: Sequence[str],
    new_ctx_size: int,
    new_parallel: int,
) -> str:
    """Why the saved slots cannot be restored into the planned launch ('' when they can)."""
    if running_model and not _same_file(running_model, new_model):
        return (
            f"the model changes ({Path(running_model).name} -> {Path(new_model).name}); a slot's KV only "
            f"fits the model that computed it"
        )
    window = sliding_window_note(new_model)
    if window and SWA_FULL_FLAG not in new_args:
        return (
            f"{Path(new_model).name} is a sliding-window model ({window}) and the new launch has no "
            f"{SWA_FULL_FLAG}: llama-server restores the slot but re-processes the whole prompt on the next "
            f'request; add "{SWA_FULL_FLAG}" to [server] extra_args'
        )
    if window and running_args is not None and SWA_FULL_FLAG not in running_args:
        return (
            f"{Path(new_model).name} is a sliding-window model ({window}) and the running server was started "
            f"without {SWA_FULL_FLAG}: its slots hold only the last window"
        )
    per_slot = planned_slot_ctx(new_args, new_ctx_size, new_parallel)
    for slot in slots:
        if new_parallel > 0 and slot.id >= new_parallel:
            return f"slot {slot.id} holds {slot.n_tokens:,} tokens; the new launch has {new_parallel} slot(s)"
        if per_slot is not None and slot.n_tokens > per_slot:
            return (
                f"slot {slot.id} holds {slot.n_tokens:,} tokens but the new launch gives a slot "
                f"{per_slot:,} tokens (ctx_size {new_ctx_size:,} / {max(new_parallel, 1)} slot(s))"
            )
    return ""


def slot_filename(slot_id: int) -> str:
    """The file a slot is saved to, inside the server's --slot-save-path."""
    return f"{FILE_PREFIX}{slot_id}.bin"


def _post_slot(url: str, api_key: str, slot_id: int, action: str, filename: str) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.post(
            f"{url}/slots/{slot_id}",
            params={"action": action},
            json={"filename": filename},
            headers=_headers(api_key),
            timeout=SAVE_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise SlotCacheError(f"{action} of slot {slot_id} failed: {exc}") from exc
    if response.status_code != 200:
        raise SlotCacheError(
            f"{action} of slot {slot_id} answered {response.status_code}: {_error_text(response)}"
        )
    data = response.json()
    return data if isinstance(data, dict) else {}


def save_slots(
    url: str, api_key: str, slots: Sequence[SlotInfo], progress: Callable[[str], object]
) -> tuple[SavedSlot, ...]:
    """Save each slot to disk (the server waits for a busy slot to finish its request first)."""
    saved: list[SavedSlot] = []
    for slot in slots:
        name = slot_filename(slot.id)
        progress(f"saving slot {slot.id} ({slot.n_tokens:,} tokens{', busy' if slot.busy else ''}) to {name}")
        answer = _post_slot(url, api_key, slot.id, "save", name)
        saved.append(SavedSlot(slot.id, name, int(answer.get("n_saved") or 0)))
    return tuple(saved)


def restore_slots(
    url: str, api_key: str, saved: Sequence[SavedSlot], progress: Callable[[str], object]
) -> tuple[dict[int, int], list[str]]:
    """Restore saved slots that fit the running server: ({slot id: n_restored}, reasons for the others)."""
    fitting = {slot.id: slot for slot in read_slots(url, api_key)}
    restored: dict[int, int] = {}
    problems: list[str] = []
    for item in saved:
        target = fitting.get(item.id)
        if target is None:
            problems.append(f"slot {item.id}: the new server has no such slot")
            continue
        if target.n_ctx and item.n_saved > target.n_ctx:
            problems.append(f"slot {item.id}: {item.n_saved:,} tokens do not fit its {target.n_ctx:,}")
            continue
        progress(f"restoring slot {item.id} ({item.n_saved:,} tokens) from {item.filename}")
        try:
            answer = _post_slot(url, api_key, item.id, "restore", item.filename)
        except SlotCacheError as exc:
            problems.append(str(exc))
            continue
        restored[item.id] = int(answer.get("n_restored") or 0)
    return restored, problems
