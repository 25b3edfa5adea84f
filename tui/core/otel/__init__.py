"""Optional OpenTelemetry export of journal rows (one GenAI span per model request), off by default."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.core.config import OtelSettings

if TYPE_CHECKING:
    from tui.core.otel.exporter import SpanExport, StatusCallback

# At exit the worker waits this long for queued spans (it must stop well within the proxy's stop timeout).
FLUSH_AT_EXIT_S = 3.0


def start_span_export(
    settings: OtelSettings, on_status: StatusCallback | None = None, upstream: str = ""
) -> SpanExport | None:
    """A running SpanExport when [otel] endpoint is set, else None (the SDK is imported only then).

    `upstream` (the proxy's llama-server URL) gives every span its server.address and server.port.
    """
    if not settings.endpoint:
        return None
    from tui.core.otel.exporter import SpanExport
    from tui.core.otel.spans import server_attributes
    from tui.core.otel.target import resolve_target

    target = resolve_target(settings.endpoint, settings.headers_env, settings.service_name, settings.timeout)
    return SpanExport(target, on_status, server_attributes(upstream))
