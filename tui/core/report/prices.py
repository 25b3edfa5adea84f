"""The cloud price table of the [report] config section and what traffic would cost at those prices."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any

DEFAULT_PRICES_DATE = "2026-11"
DEFAULT_PRICES_NOTE = "list prices, check before relying on them"


@dataclass(frozen=True)
class PriceEntry:
    """One cloud model's list prices per million tokens."""

    name: str
    model_pattern: str
    input: float
    cached_input: float
    output: float
    currency: str = "USD"

    def matches(self, model: str) -> bool:
        """Whether a request's model name matches this entry's glob pattern (case-insensitive)."""
        return fnmatch.fnmatch(model.lower(), self.model_pattern.lower())


# Per-million-token list prices, first match wins (cache reads as cached_input; cache writes not modelled).
DEFAULT_PRICES: tuple[PriceEntry, ...] = (
    PriceEntry("Claude Opus 4.5", "claude-opus-4-5*", 5.00, 0.50, 25.00),
    PriceEntry("Claude Sonnet 4.5", "claude-sonnet-4*", 3.00, 0.30, 15.00),
    PriceEntry("Claude Haiku 4.5", "claude-haiku-4*", 1.00, 0.10, 5.00),
    PriceEntry("GPT-5 mini", "gpt-5-mini*", 0.25, 0.025, 2.00),
    PriceEntry("GPT-5", "gpt-5*", 1.25, 0.125, 10.00),
)


@dataclass(frozen=True)
class ReportSettings:
    """The [report] config section: cloud price table and the date its prices were taken."""

    prices: tuple[PriceEntry, ...] = DEFAULT_PRICES
    prices_date: str = DEFAULT_PRICES_DATE
    prices_note: str = DEFAULT_PRICES_NOTE

    def price_for(self, model: str) -> PriceEntry | None:
        """The first entry whose pattern matches `model`."""
        return next((p for p in self.prices if p.matches(model)), None)


@dataclass(frozen=True)
class CloudCost:
    """What some traffic would have cost at one price entry."""

    name: str
    currency: str
    input_cost: float
    cached_cost: float
    output_cost: float

    @property
    def total(self) -> float:
        """Sum of the three parts."""
        return self.input_cost + self.cached_cost + self.output_cost

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return {
            "name": self.name,
            "currency": self.currency,
            "input": round(self.input_cost, 6),
            "cached_input": round(self.cached_cost, 6),
            "output": round(self.output_cost, 6),
            "total": round(self.total, 6),
        }


def cloud_cost(entry: PriceEntry, new_tokens: int, cached_tokens: int, output_tokens: int) -> CloudCost:
    """Cost of the given token totals at `entry`'s prices (per million tokens)."""
    return CloudCost(
        name=entry.name,
        currency=entry.currency,
        input_cost=new_tokens * entry.input / 1e6,
        cached_cost=cached_tokens * entry.cached_input / 1e6,
        output_cost=output_tokens * entry.output / 1e6,
    )


_ENTRY_KEYS = {"name": str, "model_pattern": str, "input": float, "cached_input": float, "output": float,
               "currency": str}


def report_settings_from_dict(data: dict[str, Any], source: str = "<dict>") -> ReportSettings:
    """Build ReportSettings from a parsed [report] table; ValueError names file, key and fix."""
    known = {"prices", "prices_date", "prices_note"}
    for key in data:
        if key not in known:
            raise ValueError(f"{source}: [report] {key}: unknown key; valid keys: {', '.join(sorted(known))}")
    kwargs: dict[str, Any] = {}
    for key in ("prices_date", "prices_note"):
        if key in data:
            if not isinstance(data[key], str):
                raise ValueError(f'{source}: [report] {key}: expected a string such as "2026-11"')
            kwargs[key] = data[key]
    if "prices" in data:
        raw = data["prices"]
        if not isinstance(raw, list):
            raise ValueError(f"{source}: [report] prices: expected an array of tables ([[report.prices]])")
        kwargs["prices"] = tuple(_entry(item, i, source) for i, item in enumerate(raw))
    return ReportSettings(**kwargs)


def _entry(item: Any, index: int, source: str) -> PriceEntry:
    where = f"{source}: [[report.prices]] #{index + 1}"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected a table with {', '.join(_ENTRY_KEYS)}")
    values: dict[str, Any] = {}
    for key, value in item.items():
        kind = _ENTRY_KEYS.get(key)
        if kind is None:
            raise ValueError(f"{where}: {key}: unknown key; valid keys: {', '.join(_ENTRY_KEYS)}")
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"{where}: {key}: expected a price >= 0 per million tokens, got {value!r}")
            value = float(value)
        elif not isinstance(value, str):
            raise ValueError(f"{where}: {key}: expected a string, got {value!r}")
        values[key] = value
    missing = [k for k in ("name", "input", "cached_input", "output") if k not in values]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    values.setdefault("model_pattern", values["name"])
    return PriceEntry(**values)
