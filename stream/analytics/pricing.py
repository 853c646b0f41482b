"""Model prices for cost estimates: the dated table shipped in the repo, optionally overridden per install.

The bundled table is ``stream/analytics/pricing.json`` (USD per million tokens, with its date and source).
An override file, ``$CCSTREAM_PRICING_FILE`` or else ``<data_dir>/pricing.json``, has the same shape; its
models are merged over the bundled ones (so a file holding one new model is enough) and its date/source,
when given, replace the bundled ones in reports.

Costs are applied at query time, not stored, so a price change needs no migration and no re-ingest: the
analytics queries embed :meth:`PriceTable.sql_cost_expr` in their SQL. A request is priced by its own prompt
(long-context tiers) and speed (fast mode); web searches per 1,000. A model the table does not know has no
price (None, index 0 in SQL): the queries name such models (`unpriced_models`) rather than count them as free.
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
# keys a price object may carry besides its rates: where the price comes from (read by people, not by code)
_INFO_FIELDS = ("source", "date", "note")


class PricingError(ValueError):
    """A pricing file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class LongContext:
    """Rates of a request whose prompt (input + cache writes + cache reads) exceeds `threshold` tokens: they
    apply to every token of that request, output included, as Anthropic bills it."""

    threshold: int
    price: ModelPrice


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens; `long_context` and `fast` (fast mode, usage.speed = "fast") where they apply."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float
    long_context: LongContext | None = None
    fast: ModelPrice | None = None

    def rates(self, prompt_tokens: int = 0, fast: bool = False) -> ModelPrice:
        """The rates one request pays: fast mode's when it ran fast (and the model has them), then the
        long-context tier of those when its prompt is above the threshold."""
        base = self.fast if fast and self.fast is not None else self
        if base.long_context is not None and prompt_tokens > base.long_context.threshold:
            return base.long_context.price
        return base

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        cache_creation_tokens: int,
        cache_read_tokens: int,
        cache_creation_1h: int = 0,
        fast: bool = False,
    ) -> float:
        """USD of ONE request (the long-context tier depends on its prompt)."""
        r = self.rates(input_tokens + cache_creation_tokens + cache_read_tokens, fast)
        # cache writes without a TTL breakdown (Claude Code 1.0.31) are 5-minute writes, as ccusage counts them
        cache_5m = max(cache_creation_tokens - cache_creation_1h, 0)
        return (
            input_tokens * r.input
            + output_tokens * r.output
            + cache_5m * r.cache_write_5m
            + cache_creation_1h * r.cache_write_1h
            + cache_read_tokens * r.cache_read
        ) / 1_000_000

    def variants(self) -> tuple[list[float], int, int]:
        """For SQL: the rates of (standard, standard long, fast, fast long), 5 numbers each, a missing variant
        filled with the one that applies instead, and the long-context thresholds of standard and fast (0 =
        none)."""
        std_th = self.long_context.threshold if self.long_context else 0
        std_long = self.long_context.price if self.long_context else self
        if self.fast is not None:
            fast: ModelPrice = self.fast
            fast_long = fast.long_context.price if fast.long_context else fast
            fast_th = fast.long_context.threshold if fast.long_context else 0
        else:  # no fast rates: a fast request pays what a standard one does
            fast, fast_long, fast_th = self, std_long, std_th
        rows = [float(getattr(p, f)) for p in (self, std_long, fast, fast_long) for f in PRICE_FIELDS]
        return rows, std_th, fast_th


@dataclass(frozen=True)
class PriceTable:
    date: str
    source: str
    currency: str
    models: dict[str, ModelPrice]
    origins: tuple[str, ...] = field(default=())  # files the table was read from, bundled first
    web_search_per_1000: float = 0.0  # USD per 1,000 web searches (usage.server_tool_use.web_search_requests)

    def lookup(self, model: str | None) -> ModelPrice | None:
        """Exact name, else the longest table key that prefixes the model at a '-' or '@' boundary, so
        'claude-opus-4-1-20250805' finds 'claude-opus-4-1' rather than 'claude-opus-4'. A context-window
        suffix such as '[1m]' is ignored."""
        if not model:
            return None
        if model in self.models:
            return self.models[model]
        name = model[model.find("claude-") :] if "claude-" in model else model  # e.g. bedrock "us.anthropic."
        if name.endswith("]") and "[" in name:
            name = name[: name.rindex("[")]
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
        fast: bool = False,
        web_search_requests: int = 0,
    ) -> float | None:
        """Estimated USD of one request, or None for a model the table does not know."""
        price = self.lookup(model)
        if price is None:
            return None
        return (price.cost(input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens,
                           cache_creation_1h, fast)
                + web_search_requests * self.web_search_per_1000 / 1000)

    def thresholds(self) -> list[int]:
        """Every long-context threshold in the table, ascending: a request's prompt band is how many it exceeds."""
        out: set[int] = set()
        for p in self.models.values():
            _, std_th, fast_th = p.variants()
            out.update(t for t in (std_th, fast_th) if t > 0)
        return sorted(out)

    def sql_prompt_band(self, prompt: str) -> str:
        """A ClickHouse expression: how many of :meth:`thresholds` the prompt-token expression exceeds. Grouped
        by it (with the model and fast mode) before summing, sums of many requests are still priced tier by
        tier: a request is long-context for its model iff its band reaches the band of the model's threshold."""
        ths = self.thresholds()
        if not ths:
            return "toUInt8(0)"
        return f"toUInt8(arrayCount(t -> ({prompt}) > t, [{', '.join(str(t) for t in ths)}]))"

    def sql_price_index(self, model: str = "model") -> str:
        """A ClickHouse expression: 1-based index of the model's price row (longest matching key first, the
        same rule as :meth:`lookup`), 0 when no key matches. Bind it once (``AS idx``) and pass the alias to
        :meth:`sql_cost_expr`: the SQL is analysed on every query, and size costs time there."""
        keys = sorted(self.models, key=len, reverse=True)
        # the name from 'claude-' on, so provider-prefixed names (bedrock "us.anthropic.…") still match, and
        # without a context-window suffix ('[1m]')
        m = (f"replaceRegexpOne(if(position({model}, 'claude-') > 0, "
             f"substring({model}, position({model}, 'claude-')), {model}), '\\\\[[^\\\\]]*\\\\]$', '')")
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
        fast: str | None = None,
        prompt_band: str | None = None,
        web_search_requests: str | None = None,
    ) -> str:
        """A ClickHouse expression (Float64) for the cost of the given token columns, unknown models 0 (find
        them by :meth:`sql_price_index` = 0 and name them: never let them pass as free).

        ``price_index`` names a column holding :meth:`sql_price_index` (else it is computed inline); ``fast``
        a 0/1 column (fast mode); ``prompt_band`` a column holding :meth:`sql_prompt_band` of the requests
        summed (else the band of the given columns, right for one request); ``web_search_requests`` a count
        priced per 1,000. Keys and numbers come from the table (keys quoted), never from user input."""
        keys = sorted(self.models, key=len, reverse=True)
        index = price_index or self.sql_price_index(model)
        ths = self.thresholds()
        rows, std_bands, fast_bands = ["[" + ", ".join(["0."] * 20) + "]"], [0], [0]
        for k in keys:
            nums, std_th, fast_th = self.models[k].variants()
            rows.append("[" + ", ".join(repr(v) for v in nums) + "]")
            std_bands.append(ths.index(std_th) + 1 if std_th else 0)
            fast_bands.append(ths.index(fast_th) + 1 if fast_th else 0)
        band = prompt_band or self.sql_prompt_band(f"{input_tokens} + {cache_creation} + {cache_read}")
        is_fast = f"(({fast}) != 0)" if fast else "0"
        lb = (f"if({is_fast}, arrayElement([{', '.join(map(str, fast_bands))}], {index} + 1), "
              f"arrayElement([{', '.join(map(str, std_bands))}], {index} + 1))")
        variant = f"(if({is_fast}, 2, 0) + if({lb} > 0 AND {band} >= {lb}, 1, 0))"
        # the variant's five rates, the table written once (the SQL is analysed on every query)
        rates = f"arraySlice(arrayElement([{', '.join(rows)}], {index} + 1), {variant} * 5 + 1, 5)"
        cc5 = f"greatest(toInt64({cache_creation}) - toInt64({cache_creation_1h}), 0)"
        counts = f"[toFloat64({input_tokens}), toFloat64({output_tokens}), toFloat64({cc5}), " \
                 f"toFloat64({cache_creation_1h}), toFloat64({cache_read})]"
        body = f"arraySum(arrayMap((n, r) -> n * r, {counts}, {rates}))"
        search = (f" + if({index} > 0, {web_search_requests} * {self.web_search_per_1000!r} / 1000., 0.)"
                  if web_search_requests else "")
        return f"((({body}) / 1000000.){search})"


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_pricing(obj: Mapping[str, Any], origin: str) -> PriceTable:
    """Validate a pricing document (the shape of stream/analytics/pricing.json)."""
    if not isinstance(obj, Mapping) or not isinstance(obj.get("models"), Mapping):
        raise PricingError(f"{origin}: expected an object with a 'models' object")
    models = {str(name): _model_price(prices, f"{origin}: model {name!r}", tiers=True)
              for name, prices in obj["models"].items()}
    search = obj.get("web_search_per_1000", 0)
    if isinstance(search, bool) or not isinstance(search, int | float) or not math.isfinite(search) or search < 0:
        raise PricingError(f"{origin}: web_search_per_1000 must be a non-negative number, got {search!r}")
    return PriceTable(
        date=str(obj.get("date") or ""),
        source=str(obj.get("source") or ""),
        currency=str(obj.get("currency") or "USD"),
        models=models,
        origins=(origin,),
        web_search_per_1000=float(search),
    )


def _model_price(prices: Any, where: str, tiers: bool) -> ModelPrice:
    """One price object: the five rates, and (on a model, and on its fast rates) a long_context tier; a model
    may also have fast rates. Unknown keys are refused, so a misspelt tier is never silently ignored."""
    if not isinstance(prices, Mapping):
        raise PricingError(f"{where}: expected an object of prices")
    missing = [f for f in PRICE_FIELDS if f not in prices]
    if missing:
        raise PricingError(f"{where} lacks {', '.join(missing)}")
    allowed = {*PRICE_FIELDS, *_INFO_FIELDS, *(("long_context", "fast") if tiers else ("threshold",))}
    unknown = sorted(set(prices) - allowed)
    if unknown:
        raise PricingError(f"{where}: unknown key {', '.join(map(repr, unknown))}")
    values: dict[str, float] = {}
    for f in PRICE_FIELDS:
        v = prices[f]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise PricingError(f"{where}: {f} must be a non-negative number, got {v!r}")
        values[f] = float(v)
    long_context = None
    if tiers and prices.get("long_context") is not None:
        lc = prices["long_context"]
        th = lc.get("threshold") if isinstance(lc, Mapping) else None
        if isinstance(th, bool) or not isinstance(th, int) or th <= 0:
            raise PricingError(f"{where}: long_context needs a positive integer threshold (prompt tokens)")
        long_context = LongContext(th, _model_price(lc, f"{where} long_context", tiers=False))
    fast = None
    if tiers and prices.get("fast") is not None:
        fast = _model_price(prices["fast"], f"{where} fast", tiers=True)
        if fast.fast is not None:
            raise PricingError(f"{where}: fast rates cannot have fast rates of their own")
    return ModelPrice(**values, long_context=long_context, fast=fast)


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
        web_search_per_1000=override.web_search_per_1000 or base.web_search_per_1000,
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
