"""The proxy's control API (/_ctxbudget/...), its client, and the runtime transform switches."""

from __future__ import annotations
