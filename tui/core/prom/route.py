"""The aiohttp handler the proxy mounts at GET /_ctxbudget/metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from tui.core.prom.metrics import ProxyMetrics

METRICS_PATH = "/_ctxbudget/metrics"

Handler = Callable[[web.Request], Awaitable[web.Response]]


def metrics_route(metrics: ProxyMetrics) -> Handler:
    """A GET handler serving `metrics` in the text exposition format."""

    async def serve_metrics(request: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return serve_metrics


def mount_metrics(app: web.Application, metrics: ProxyMetrics) -> None:
    """Add GET METRICS_PATH to an app (before any catch-all route)."""
    app.router.add_route("GET", METRICS_PATH, metrics_route(metrics))
