"""Journal rows out as OTLP/HTTP spans through the OpenTelemetry SDK: batched on the SDK's own thread,
failures counted and logged, never raised into the caller (the analysis worker)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode

from tui.core.otel.spans import AttributeValue, span_fields
from tui.core.otel.target import OtelTarget
from tui.core.records import RequestRecord
from tui.core.redact import redact_text

log = logging.getLogger(__name__)

SDK_EXPORTER_LOGGER = "opentelemetry.exporter"  # where the OTLP exporter says why a batch failed
LOG_EVERY = 100  # after the first failure, one log line per this many failed spans
# Spans waiting for export at most; past it a span is dropped and counted here (the SDK would drop it too,
# silently). Checked before the SDK's queue, which gets the same size.
MAX_PENDING = 2048
BATCH_SIZE = 512  # spans per export request (the SDK's default)
INSTRUMENTATION = "ctxbudget"
MAX_REASON = 400  # characters of an export error kept for /health and the log

StatusCallback = Callable[[dict[str, Any]], None]


class _LastMessage(logging.Handler):
    """Keeps why the SDK exporter failed a batch (its last warning, and the retried error before it)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(redact_text(record.getMessage()))
        except Exception:  # a bad log record must not break export
            self.messages.append("export failed")

    @property
    def text(self) -> str | None:
        """The last message, with the first different one before it (e.g. connection refused)."""
        if not self.messages:
            return None
        last = self.messages[-1]
        earlier = [m for m in self.messages if m != last]
        return (f"{last} ({earlier[-1]})" if earlier else last)[:MAX_REASON]


class _RowIds(IdGenerator):
    """Hands the SDK the ids chosen for the next span (derived from its row), random ones otherwise."""

    def __init__(self) -> None:
        self.random = RandomIdGenerator()
        self.next_trace_id: int | None = None
        self.next_span_id: int | None = None

    def generate_trace_id(self) -> int:
        trace_id, self.next_trace_id = self.next_trace_id, None
        return trace_id or self.random.generate_trace_id()

    def generate_span_id(self) -> int:
        span_id, self.next_span_id = self.next_span_id, None
        return span_id or self.random.generate_span_id()


class _CountingExporter(SpanExporter):
    """Wraps the OTLP exporter: counts exported and failed spans, remembers why the last batch failed."""

    def __init__(self, inner: SpanExporter, owner: SpanExport) -> None:
        self.inner = inner
        self.owner = owner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        reason = self.owner.sdk_messages
        reason.messages.clear()
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # the SDK catches this too; count it here
            reason.messages.append(redact_text(f"{type(exc).__name__}: {exc}"))
            result = SpanExportResult.FAILURE
        self.owner.batch_done(len(spans), result is SpanExportResult.SUCCESS, reason.text)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class SpanExport:
    """One TracerProvider with a BatchSpanProcessor sending to the OTLP/HTTP endpoint of `target`.

    `export(record)` only queues a span (the SDK drops spans past its queue size rather than block);
    `status()` is what /health shows; `on_status` is told after every batch (from the SDK's thread).
    """

    def __init__(
        self,
        target: OtelTarget,
        on_status: StatusCallback | None = None,
        common: dict[str, AttributeValue] | None = None,
    ) -> None:
        self.target = target
        self.common = dict(common or {})  # attributes every span gets (server.address, server.port)
        self.on_status = on_status
        self.sdk_messages = _LastMessage()
        sdk_logger = logging.getLogger(SDK_EXPORTER_LOGGER)
        sdk_logger.addHandler(self.sdk_messages)
        sdk_logger.propagate = False  # summarised by batch_done instead: one line per LOG_EVERY failures
        self._lock = threading.Lock()
        self.queued = 0
        self.exported = 0
        self.failed = 0
        self.dropped = 0
        self.last_error: str | None = target.problem
        self._logged_failures = 0
        self._failing = False
        otlp = OTLPSpanExporter(
            endpoint=target.traces_url, headers=dict(target.headers), timeout=target.timeout
        )
        resource = Resource.create({"service.name": target.service_name})
        self.ids = _RowIds()
        self._start = threading.Lock()  # the ids set for a span are the ones its start_span takes
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False, id_generator=self.ids)
        self.processor = BatchSpanProcessor(
            _CountingExporter(otlp, self),
            max_queue_size=MAX_PENDING,
            max_export_batch_size=min(BATCH_SIZE, MAX_PENDING),
        )
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer(INSTRUMENTATION)

    def export(self, record: RequestRecord) -> None:
        """Queue the span of one committed row (nothing for rows that are not model requests)."""
        try:
            fields = span_fields(record)
            if fields is None or self._drop_if_backlogged():
                return
            with self._start:
                self.ids.next_trace_id, self.ids.next_span_id = fields.trace_id, fields.span_id
                span = self.tracer.start_span(
                    fields.name,
                    kind=SpanKind.CLIENT,
                    attributes={**self.common, **fields.attributes},
                    start_time=fields.start_ns,
                )
            if fields.error is not None:
                span.set_status(Status(StatusCode.ERROR, fields.error))
            span.end(end_time=fields.end_ns)
            with self._lock:
                self.queued += 1
        except Exception as exc:  # never let tracing cost a journal row
            with self._lock:
                self.failed += 1
                self.last_error = f"could not build the span: {type(exc).__name__}: {exc}"
            log.exception("OpenTelemetry: could not build the span of row %s", record.id)

    def _drop_if_backlogged(self) -> bool:
        """True (and counted) when MAX_PENDING spans already wait: the endpoint is slower than traffic."""
        with self._lock:
            if self.queued - self.exported - self.failed < MAX_PENDING:
                return False
            self.dropped += 1
            dropped = self.dropped
        if dropped == 1 or dropped % LOG_EVERY == 0:
            log.warning(
                "OpenTelemetry: %d spans dropped so far: %d wait for %s already",
                dropped, MAX_PENDING, self.target.safe_url,
            )
        return True

    def batch_done(self, count: int, ok: bool, reason: str | None) -> None:
        """Count one batch the SDK tried to send (called on the SDK's export thread)."""
        with self._lock:
            recovered = ok and self._failing
            self._failing = not ok
            if ok:
                self.exported += count
                self.last_error = self.target.problem
            else:
                self.failed += count
                self.last_error = reason or f"export to {self.target.safe_url} failed"
            failed, first = self.failed, self._logged_failures == 0
            due = not ok and (first or failed - self._logged_failures >= LOG_EVERY)
            if due:
                self._logged_failures = failed
        if due:
            log.warning(
                "OpenTelemetry: %d spans not exported to %s so far (last: %s)",
                failed, self.target.safe_url, reason or "no reason given",
            )
        elif recovered:
            log.warning("OpenTelemetry: export to %s works again", self.target.safe_url)
        if self.on_status is not None:
            try:
                self.on_status(self.status())
            except Exception:
                log.exception("OpenTelemetry: status callback failed")

    def status(self) -> dict[str, Any]:
        """Counts for /health: spans queued, exported, failed, still pending, dropped, and the last error."""
        with self._lock:
            return {
                "endpoint": self.target.safe_url,
                "queued": self.queued,
                "exported": self.exported,
                "failed": self.failed,
                "pending": max(0, self.queued - self.exported - self.failed),
                "dropped": self.dropped,
                "lost": 0,  # spans of analysis workers that died first (summed by tui.core.otel.counts)
                "last_error": self.last_error,
            }

    def shutdown(self, timeout_s: float) -> None:
        """Send what is queued, waiting at most `timeout_s`; what is left is logged as lost."""
        # The SDK's shutdown waits up to 30 s for an unreachable endpoint: run it aside, wait timeout_s.
        closer = threading.Thread(target=self._close, name="ctxbudget-otel-shutdown", daemon=True)
        closer.start()
        closer.join(timeout_s)
        status = self.status()
        if status["pending"]:
            log.warning(
                "OpenTelemetry: %d spans not sent to %s before exit", status["pending"], self.target.safe_url
            )
        if self.on_status is not None:
            try:
                self.on_status(status)
            except Exception:
                log.exception("OpenTelemetry: status callback failed")
        logging.getLogger(SDK_EXPORTER_LOGGER).removeHandler(self.sdk_messages)

    def _close(self) -> None:
        try:
            self.processor.shutdown()  # type: ignore[no-untyped-call]
        except Exception:
            log.exception("OpenTelemetry: shutdown failed")
