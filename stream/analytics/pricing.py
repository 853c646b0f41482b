"""Model prices for cost estimates: the dated table shipped in the repo, optionally overridden per install.

The bundled table is ``stream/analytics/pricing.json`` (USD per million tokens, with its date and source).
An override file, ``$CCSTREAM_PRICING_FILE`` or else ``<data_dir>/pricing.json``, has the same shape; its
models are merged over the bundled ones (so a file holding one new model is enough) and its date/source,
when given, replace the bundled ones in reports.

Costs are applied at query time, not stored, so a price change needs no migration and no re-ingest: the
analytics queries embed :meth:`PriceTable.sql_cost_expr` in their SQL.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BUNDLED_PRICING = Path(__file__).resolve().parent / "pricing.json"
PRICING_ENV = "CCSTREAM_PRICING_FILE"
PRICE_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")


class PricingError(ValueError):
    """A pricing file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_creation_tokens: int,
        cache_read_tokens: int,
        cache_creation_1h: int = 0,
    ) -> float:
        # cache writes without a TTL breakdown (Claude Code 1.0.31) are 5-minute writes, as ccusage counts them
        cache_5m = max(cache_creation_tokens - cache_creation_1h, 0)
        return (
            input_tokens * self.input
            + output_tokens * self.output
            + cache_5m * self.cache_write_5m
            + cache_creation_1h * self.cache_write_1h
            + cache_read_tokens * self.cache_read
        ) / 1_000_000


@dataclass(frozen=True)
class PriceTable:
    date: str
    source: str
    currency: str
    models: dict[str, ModelPrice]
    origins: tuple[str, ...] = field(default=())  # files the table was read from, bundled first

    def lookup(self, model: str | None) -> ModelPrice | None:
        """Exact name, else the longest table key that prefixes the model at a '-' or '@' boundary, so
        'claude-opus-4-1-20250805' finds 'claude-opus-4-1' rather than 'claude-opus-4'."""
        if not model:
            return None
        if model in self.models:
            return self.models[model]
        name = model[model.find("claude-") :] if "claude-" in model else model  # e.g. bedrock "us.anthropic."
        best: str | None = None
        for key in self.models:
            if (name == key or name.startswith(key + "-") or name.startswith(key + "@")) and (
                best is None or len(key) > len(best)
            ):
                best = key
        return self.models[best] if best is not None else None

    def cost(
        self,
        model: str | None,
        input_tokens: int,
        output_tokens: int,
        cache_creation_tokens: int,
        cache_read_tokens: int,
        cache_creation_1h: int = 0,
    ) -> float | None:
        """Estimated USD, or None for a model the table does not know."""
        price = self.lookup(model)
        if price is None:
            return None
        return price.cost(input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, cache_creation_1h)

    def sql_price_index(self, model: str = "model") -> str:
        """A ClickHouse expression: 1-based index of the model's price row (longest matching key first, the
        same rule as :meth:`lookup`), 0 when no key matches. Bind it once (``AS idx``) and pass the alias to
        :meth:`sql_cost_expr`: the SQL is analysed on every query, and size costs time there."""
        keys = sorted(self.models, key=len, reverse=True)
        # the name from 'claude-' on, so provider-prefixed names (bedrock "us.anthropic.…") still match
        m = f"if(position({model}, 'claude-') > 0, substring({model}, position({model}, 'claude-')), {model})"
        key_list = "[" + ", ".join(_sql_string(k) for k in keys) + "]"
        # m = k OR m starts with k + '-'  ⇔  m + '-' starts with k + '-'
        return (f"arrayFirstIndex(k -> startsWith(concat({m}, '-'), concat(k, '-')) "
                f"OR startsWith({m}, concat(k, '@')), {key_list})")

    def sql_cost_expr(
        self,
        model: str = "model",
        input_tokens: str = "input_tokens",
        output_tokens: str = "output_tokens",
        cache_creation: str = "cache_creation_input_tokens",
        cache_read: str = "cache_read_input_tokens",
        cache_creation_1h: str = "cache_creation_1h",
        price_index: str | None = None,
    ) -> str:
        """A ClickHouse expression (Float64) for the cost of the given token columns, unknown models 0.

        ``price_index`` names a column holding :meth:`sql_price_index` (else it is computed inline). Keys and
        numbers come from the table (keys quoted), never from user input."""
        keys = sorted(self.models, key=len, reverse=True)
        index = price_index or self.sql_price_index(model)
        rows = ["(0., 0., 0., 0., 0.)"] + [
            "(" + ", ".join(repr(float(getattr(self.models[k], f))) for f in PRICE_FIELDS) + ")" for k in keys]
        price = f"arrayElement([{', '.join(rows)}], {index} + 1)"
        cc5 = f"greatest(toInt64({cache_creation}) - toInt64({cache_creation_1h}), 0)"
        body = " + ".join([
            f"{input_tokens} * tupleElement({price}, 1)",
            f"{output_tokens} * tupleElement({price}, 2)",
            f"{cc5} * tupleElement({price}, 3)",
            f"{cache_creation_1h} * tupleElement({price}, 4)",
            f"{cache_read} * tupleElement({price}, 5)",
        ])
        return f"(({body}) / 1000000.)"


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_pricing(obj: Mapping[str, Any], origin: str) -> PriceTable:
    """Validate a pricing document (the shape of stream/analytics/pricing.json)."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("models"), Mapping):
        raise PricingError(f"{origin}: expected an object with a 'models' object")
    models: dict[str, ModelPrice] = {}
    for name, prices in obj["models"].items():
        if not isinstance(prices, Mapping):
            raise PricingError(f"{origin}: model {name!r}: expected an object of prices")
        missing = [f for f in PRICE_FIELDS if f not in prices]
        if missing:
            raise PricingError(f"{origin}: model {name!r} lacks {', '.join(missing)}")
        values: dict[str, float] = {}
        for f in PRICE_FIELDS:
            v = prices[f]
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
                raise PricingError(f"{origin}: model {name!r}: {f} must be a non-negative number, got {v!r}")
            values[f] = float(v)
        models[str(name)] = ModelPrice(**values)
    return PriceTable(
        date=str(obj.get("date") or ""),
        source=str(obj.get("source") or ""),
        currency=str(obj.get("currency") or "USD"),
        models=models,
        origins=(origin,),
    )


def _read(path: Path) -> PriceTable:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PricingError(f"cannot read pricing file {path}: {exc}") from exc
    return parse_pricing(obj, str(path))


def merge(base: PriceTable, override: PriceTable) -> PriceTable:
    """Override's models win one by one; its date/source/currency win when present."""
    return PriceTable(
        date=override.date or base.date,
        source=override.source or base.source,
        currency=override.currency or base.currency,
        models={**base.models, **override.models},
        origins=base.origins + override.origins,
    )


def override_path(data_dir: Path | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The override file in force: $CCSTREAM_PRICING_FILE (must exist), else <data_dir>/pricing.json if any."""
    env = os.environ if env is None else env
    explicit = env.get(PRICING_ENV, "").strip()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise PricingError(f"{PRICING_ENV}={explicit} does not name a file")
        return path
    if data_dir is not None and (data_dir / "pricing.json").is_file():
        return data_dir / "pricing.json"
    return None


def load_pricing(data_dir: Path | None = None, env: Mapping[str, str] | None = None) -> PriceTable:
    """The bundled table, merged with the override file when there is one."""
    table = _read(BUNDLED_PRICING)
    extra = override_path(data_dir, env)
    return merge(table, _read(extra)) if extra is not None else table
