"""Poll a llama-server over HTTP into ServerSnapshots, without overlapping polls or waking it from sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx

from tui.core.poll.metrics import build_metrics_snapshot, parse_metrics_text
from tui.core.poll.router import POLLABLE, is_router, parse_router_models
from tui.core.poll.slots import parse_models, parse_props, parse_slots
from tui.core.poll.snapshots import MetricsSnapshot, RouterModel, ServerSnapshot, ServerState, SlotSnapshot
from tui.core.redact import redact_text, redact_url
from tui.core.waits import wait_set

SnapshotCallback = Callable[[ServerSnapshot], Awaitable[None] | None]

METRICS_DISABLED = "metrics disabled (start llama-server with --metrics)"
SLOTS_DISABLED = "slots endpoint disabled (start llama-server without --no-slots)"
UNAUTHORIZED = "unauthorized (HTTP 401): set [server] api_key to the llama-server --api-key"


class _Unauthorized(Exception):
    """The server rejected our API key."""


class ServerPoller:
    """Polls /health, /props, /slots, /v1/models and /metrics of one llama-server."""

    def __init__(
        self,
        url: str,
        api_key: str = "",
        *,
        interval: float = 2.0,
        timeout: float = 3.0,
        max_backoff: float = 10.0,
        metrics: bool = True,
        history: int = 300,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.shown_url = redact_url(self.url)  # what snapshots and messages say: no password
        self.interval = interval
        self.max_backoff = max_backoff
        self.history: deque[ServerSnapshot] = deque(maxlen=history)
        self._want_metrics = metrics
        self._metrics_enabled = metrics
        self._slots_enabled = True
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout
        self._client = client
        self._own_client = client is None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._poke = asyncio.Event()
        self._failures = 0
        self._n_ctx_train: int | None = None
        self._model_id = ""
        self._last_ok_ts: float | None = None
        self._slots: tuple[SlotSnapshot, ...] = ()
        self._slots_ts: float | None = None
        self._metrics: MetricsSnapshot | None = None
        self._metrics_at_slots: MetricsSnapshot | None = None
        # Router mode: per model, its last slots and when they were read; the model shown in front.
        self._router_slots: dict[str, tuple[tuple[SlotSnapshot, ...], float]] = {}
        self._router_active = ""
        self._router_metrics: dict[str, MetricsSnapshot] = {}
        self._router_metrics_at_slots: dict[str, MetricsSnapshot] = {}

    @property
    def latest(self) -> ServerSnapshot | None:
        """The most recent snapshot, if any poll has run."""
        return self.history[-1] if self.history else None

    def open_client(self) -> None:
        """Create the HTTP client now (it loads TLS certificates; may run in a worker thread)."""
        self._http()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env off: a local server must not be reached through HTTP(S)_PROXY.
            self._client = httpx.AsyncClient(timeout=self._timeout, trust_env=False)
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client if this poller created it."""
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _get(self, path: str) -> httpx.Response:
        try:
            response = await self._http().get(self.url + path, headers=self._headers)
        except httpx.RemoteProtocolError:
            # A kept-alive connection the server closed meanwhile (the b11434 router does so while it
            # starts a model): one fresh try, so one stale socket does not read as "server down".
            response = await self._http().get(self.url + path, headers=self._headers)
        if response.status_code == 401:
            raise _Unauthorized
        return response

    async def poll_once(self) -> ServerSnapshot:
        """Run one full poll (never two at once) and append the snapshot to history."""
        async with self._lock:
            snap = await self._poll()
            self._failures = 0 if snap.state != "down" else self._failures + 1
            if snap.state in ("up", "sleeping"):
                self._last_ok_ts = snap.ts
                snap = _with_last_ok(snap, snap.ts)
            self.history.append(snap)
            return snap

    async def _poll(self) -> ServerSnapshot:
        ts = time.time()
        previous = self.latest
        try:
            health = await self._get("/health")
        except _Unauthorized:
            return self._down(ts, UNAUTHORIZED, "up")
        except httpx.TimeoutException:
            return self._down(ts, f"no answer from {self.shown_url} within {self._timeout:g} s")
        except httpx.HTTPError as exc:
            return self._down(ts, redact_text(_describe(exc, self.shown_url)))
        if health.status_code == 503:
            return self._down(ts, "loading model", "loading")
        if health.status_code != 200:
            return self._down(ts, f"GET /health answered HTTP {health.status_code}")
        if previous is None or previous.state not in ("up", "sleeping"):
            self._reset_for_new_server()
        try:
            return await self._poll_up(ts)
        except _Unauthorized:
            return self._down(ts, UNAUTHORIZED, "up")
        except httpx.TimeoutException:
            return self._down(ts, f"no answer from {self.shown_url} within {self._timeout:g} s")
        except httpx.HTTPError as exc:
            return self._down(ts, redact_text(_describe(exc, self.shown_url)))

    def _reset_for_new_server(self) -> None:
        # After a restart the server may have other flags, another model and fresh counters.
        self._n_ctx_train = None
        self._model_id = ""
        self._metrics_enabled = self._want_metrics
        self._slots_enabled = True
        self._slots = ()
        self._slots_ts = None
        self._metrics = None
        self._metrics_at_slots = None
        self._router_slots = {}
        self._router_active = ""
        self._router_metrics = {}
        self._router_metrics_at_slots = {}

    async def _poll_up(self, ts: float) -> ServerSnapshot:
        props_response = await self._get("/props")
        if props_response.status_code == 503:
            return self._down(ts, "loading model", "loading")
        props_body = _json(props_response)
        if is_router(props_body):
            return await self._poll_router(ts)
        props = parse_props(props_body)
        sleeping = bool(props.get("is_sleeping"))
        notes: list[str] = []
        if self._n_ctx_train is None:
            self._model_id, self._n_ctx_train = parse_models(_json(await self._get("/v1/models")))
        metrics = await self._poll_metrics(ts, notes)
        # GET /slots wakes a sleeping server and resets its idle timer, so skip it while asleep and,
        # when /metrics shows no activity since the last /slots poll, reuse the previous slots.
        if not sleeping and self._slots_enabled and self._slots_needed(metrics):
            await self._poll_slots(ts)
            self._metrics_at_slots = metrics
        if not self._slots_enabled:
            notes.append(SLOTS_DISABLED)
        slots = self._slots if not sleeping else tuple(_idle(s) for s in self._slots)
        n_ctx_slot = int(props.get("n_ctx_slot", 0)) or (slots[0].n_ctx if slots else 0)
        state: ServerState = "sleeping" if sleeping else "up"
        return ServerSnapshot(
            ts=ts,
            state=state,
            url=self.shown_url,
            model=str(props.get("model") or self._model_id),
            model_path=str(props.get("model_path", "")),
            build=str(props.get("build", "")),
            n_slots=int(props.get("n_slots", 0)) or len(slots),
            n_ctx_slot=n_ctx_slot,
            n_ctx_train=self._n_ctx_train,
            slots=slots,
            slots_ts=self._slots_ts,
            metrics=metrics,
            requests_deferred=int(metrics.requests_deferred) if metrics is not None else None,
            notes=tuple(notes),
            template_tools=props.get("supports_tools"),
        )

    async def _poll_router(self, ts: float) -> ServerSnapshot:
        """A router: its models from /models; slots and n_ctx of each loaded one through `?model=`.

        Only loaded models are asked about: `?model=` on an unloaded model loads it (autoload), and
        /slots wakes a sleeping one.
        """
        models = parse_router_models(_json(await self._get("/models")))
        polled = tuple([await self._poll_router_model(m, ts) for m in models])
        loaded = [m for m in polled if m.status == "loaded"]
        busy = [m for m in loaded if any(s.is_processing for s in m.slots)]
        front = next((m for m in loaded if m.id == self._router_active), None)
        active = busy[0] if busy else front or (loaded[0] if loaded else None)
        self._router_active = active.id if active is not None else ""
        notes: list[str] = []
        metrics = self._router_metrics.get(active.id) if active is not None else None
        if active is None:
            notes.append("router: no model loaded (a request for one loads it)")
        elif self._want_metrics and not self._metrics_enabled:
            notes.append(METRICS_DISABLED)
        return ServerSnapshot(
            ts=ts,
            state="up",
            url=self.shown_url,
            model=active.id if active is not None else "",
            n_slots=active.n_slots if active is not None else 0,
            n_ctx_slot=active.n_ctx_slot if active is not None else 0,
            n_ctx_train=active.n_ctx_train if active is not None else None,
            slots=active.slots if active is not None else (),
            metrics=metrics,
            requests_deferred=int(metrics.requests_deferred) if metrics is not None else None,
            notes=tuple(notes),
            models=polled,
        )

    async def _poll_router_model(self, model: RouterModel, ts: float) -> RouterModel:
        if model.status not in POLLABLE:
            return model
        # autoload=false: a model unloaded since /models answers 400 instead of being loaded again by us.
        query = f"?model={quote(model.id, safe='')}&autoload=false"
        response = await self._get("/props" + query)
        if response.status_code == 400:
            return replace(model, status="unloaded")
        props = parse_props(_json(response))
        if props.get("is_sleeping"):
            return replace(model, status="sleeping")
        # Each model is its own process with its own counters: deltas only against the same model.
        self._metrics = self._router_metrics.get(model.id)
        metrics = await self._poll_metrics(ts, [], query)
        if metrics is not None:
            self._router_metrics[model.id] = metrics
        previous, previous_ts = self._router_slots.get(model.id, ((), None))
        slots, slots_ts = previous, previous_ts
        # As for one server: /slots resets the model's idle timer, so only after work (--sleep-idle-seconds).
        last = self._router_metrics_at_slots.get(model.id)
        if self._slots_enabled and slots_needed(metrics, last, previous, previous_ts):
            response = await self._get("/slots" + query)
            if response.status_code in (404, 501):
                self._slots_enabled = False
            slots_ts = time.time()  # when the answer arrived, as for one server
            slots = parse_slots(_json(response), slots_ts, previous, previous_ts)
            self._router_slots[model.id] = (slots, slots_ts)
            if metrics is not None:
                self._router_metrics_at_slots[model.id] = metrics
        n_ctx_slot = int(props.get("n_ctx_slot", 0)) or (slots[0].n_ctx if slots else 0)
        return replace(
            model,
            n_slots=int(props.get("n_slots", 0)) or len(slots),
            n_ctx_slot=n_ctx_slot,
            slots=slots,
            slots_ts=slots_ts,
        )

    async def _poll_metrics(self, ts: float, notes: list[str], query: str = "") -> MetricsSnapshot | None:
        if not self._metrics_enabled:
            if self._want_metrics:
                notes.append(METRICS_DISABLED)
            return None
        response = await self._get("/metrics" + query)
        if response.status_code in (404, 501):
            self._metrics_enabled = False
            notes.append(METRICS_DISABLED)
            return None
        if response.status_code != 200:
            notes.append(f"GET /metrics answered HTTP {response.status_code}")
            return None
        try:
            values = parse_metrics_text(response.text)
        except ValueError as exc:
            notes.append(f"GET /metrics: unreadable ({exc})")
            return None
        self._metrics = build_metrics_snapshot(values, ts, self._metrics)
        return self._metrics

    def _slots_needed(self, metrics: MetricsSnapshot | None) -> bool:
        return slots_needed(metrics, self._metrics_at_slots, self._slots, self._slots_ts)

    async def _poll_slots(self, ts: float) -> None:
        response = await self._get("/slots")
        if response.status_code in (404, 501):
            self._slots_enabled = False
            self._slots = ()
            return
        if response.status_code != 200:
            return
        answered = time.time()  # what the answer shows had happened by now (rates run between answers)
        self._slots = parse_slots(_json(response), answered, self._slots, self._slots_ts)
        self._slots_ts = answered

    def _down(self, ts: float, error: str, state: ServerState = "down") -> ServerSnapshot:
        previous = self.latest
        return ServerSnapshot(
            ts=ts,
            state=state,
            url=self.shown_url,
            error=error,
            model=previous.model if previous else "",
            model_path=previous.model_path if previous else "",
            n_ctx_train=previous.n_ctx_train if previous else None,
            last_ok_ts=self._last_ok_ts,
        )

    def next_delay(self, snapshot: ServerSnapshot) -> float:
        """Seconds until the next poll: the interval, or exponential backoff while down."""
        if snapshot.state != "down":
            return self.interval
        return float(min(self.max_backoff, self.interval * 2 ** max(0, self._failures - 1)))

    def poke(self) -> None:
        """Poll again now instead of waiting out the interval (e.g. when a request was seen)."""
        self._poke.set()

    def stop(self) -> None:
        """Make `run` and the async iterator finish after the current poll."""
        self._stop.set()
        self._poke.set()

    async def snapshots(self) -> AsyncIterator[ServerSnapshot]:
        """Yield a snapshot per poll until `stop()`; the next poll starts after the consumer resumes."""
        self._stop.clear()
        while not self._stop.is_set():
            snap = await self.poll_once()
            yield snap
            if self._stop.is_set():
                break
            await self._wait(self.next_delay(snap))

    def __aiter__(self) -> AsyncIterator[ServerSnapshot]:
        return self.snapshots()

    async def run(self, callback: SnapshotCallback) -> None:
        """Poll until `stop()`, handing each snapshot to `callback` (sync or async)."""
        async for snap in self.snapshots():
            result = callback(snap)
            if inspect.isawaitable(result):
                await result

    async def _wait(self, delay: float) -> None:
        # A poke that arrived during the last poll or callback counts: clear only after waking.
        await wait_set(self._poke, delay)
        self._poke.clear()


def slots_needed(
    metrics: MetricsSnapshot | None,
    last: MetricsSnapshot | None,
    slots: tuple[SlotSnapshot, ...],
    slots_ts: float | None,
) -> bool:
    """Whether /slots must be read again: work since the last read (a needless read keeps a server awake)."""
    if metrics is None or last is None or slots_ts is None:
        return True
    if metrics.requests_processing > 0 or metrics.requests_deferred > 0:
        return True
    if any(s.is_processing for s in slots):
        return True
    return (
        metrics.n_decode_total != last.n_decode_total
        or metrics.prompt_tokens_total != last.prompt_tokens_total
        or metrics.prompt_tokens_cached_total != last.prompt_tokens_cached_total
        or metrics.tokens_predicted_total != last.tokens_predicted_total
    )


def _with_last_ok(snap: ServerSnapshot, ts: float) -> ServerSnapshot:
    return replace(snap, last_ok_ts=ts)


def _idle(slot: SlotSnapshot) -> SlotSnapshot:
    # A sleeping server has unloaded the model and its KV cache.
    return replace(slot, is_processing=False, decode_rate=None, n_prompt_tokens=0)


def _json(response: httpx.Response) -> Any:
    if response.status_code != 200:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _describe(exc: httpx.HTTPError, url: str) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to {url} (connection refused or host unreachable)"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{url} closed the connection ({exc})"
    return f"{type(exc).__name__} talking to {url}: {exc}"
