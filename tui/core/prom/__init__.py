"""Prometheus export of the proxy's traffic and the watched llama-server's state."""

from __future__ import annotations

from tui.core.prom.metrics import ProxyMetrics
from tui.core.prom.route import METRICS_PATH, metrics_route, mount_metrics

__all__ = ["METRICS_PATH", "ProxyMetrics", "metrics_route", "mount_metrics"]
