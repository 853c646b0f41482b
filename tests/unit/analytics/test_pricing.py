"""The bundled price table, model matching, cost arithmetic and the override file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.analytics.pricing import (
    BUNDLED_PRICING,
    PRICING_ENV,
    LongContext,
    ModelPrice,
    PricingError,
    load_pricing,
    parse_pricing,
)

# Opus 4.6 with its fast-mode rates: 6x up to 200K prompt tokens, $60 / $225 above (the fast-mode page)
OPUS_4_6 = ModelPrice(5.0, 25.0, 6.25, 10.0, 0.5, fast=ModelPrice(
    30.0, 150.0, 37.5, 60.0, 3.0, long_context=LongContext(200_000, ModelPrice(60.0, 225.0, 75.0, 120.0, 6.0))))


# Sonnet 4 and 4.5: above 200K prompt tokens $6 / $22.50, cache rates on the $6 base
SONNET_4 = ModelPrice(3.0, 15.0, 3.75, 6.0, 0.3,
                      long_context=LongContext(200_000, ModelPrice(6.0, 22.5, 7.5, 12.0, 0.6)))


def test_bundled_table_is_dated_and_sourced() -> None:
    table = load_pricing(data_dir=None, env={})
    assert table.date == "2026-12-03"
    assert "ccusage 20.0.24" in table.source
    assert table.web_search_per_1000 == 10.0
    assert table.currency == "USD"
    assert table.origins == (str(BUNDLED_PRICING),)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # every model name in the fixture corpus
        ("claude-opus-4-6", OPUS_4_6),
        ("claude-opus-4-5-20251101", ModelPrice(5.0, 25.0, 6.25, 10.0, 0.5)),
        ("claude-sonnet-4-5-20250929", SONNET_4),
        ("claude-sonnet-4-20250514", SONNET_4),
        ("claude-haiku-4-5-20251001", ModelPrice(1.0, 5.0, 1.25, 2.0, 0.1)),
        ("<synthetic>", ModelPrice(0.0, 0.0, 0.0, 0.0, 0.0)),
        # longest key wins: opus 4.1 is not opus 4, opus 4 (dated) is
        ("claude-opus-4-1-20250805", ModelPrice(15.0, 75.0, 18.75, 30.0, 1.5)),
        ("claude-opus-4-20250514", ModelPrice(15.0, 75.0, 18.75, 30.0, 1.5)),
        # provider-prefixed and vertex '@' names
        ("us.anthropic.claude-haiku-4-5-20251001-v1:0", ModelPrice(1.0, 5.0, 1.25, 2.0, 0.1)),
        ("claude-sonnet-4-5@20250929", SONNET_4),
    ],
)
def test_lookup(model: str, expected: ModelPrice) -> None:
    assert load_pricing(env={}).lookup(model) == expected


# every Claude model Claude Code can select as of 2026-12 (and the older ones its transcripts hold)
EXPECTED_MODELS = {
    "claude-fable-5-2", "claude-mythos-5-2", "claude-fable-5-1", "claude-mythos-5-1", "claude-fable-5",
    "claude-mythos-5", "claude-opus-5-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6",
    "claude-opus-4-5", "claude-opus-4-1", "claude-opus-4", "claude-3-opus", "claude-sonnet-5-5", "claude-sonnet-5",
    "claude-sonnet-4-6", "claude-sonnet-4-5", "claude-sonnet-4", "claude-3-7-sonnet", "claude-3-5-sonnet",
    "claude-haiku-5-5", "claude-haiku-4-5", "claude-3-5-haiku", "claude-3-haiku", "<synthetic>",
}


def test_bundled_table_covers_every_model_with_source_and_date() -> None:
    doc = json.loads(BUNDLED_PRICING.read_text())
    assert set(doc["models"]) == EXPECTED_MODELS
    for name, entry in doc["models"].items():
        if name != "<synthetic>":
            assert entry["source"] and entry["date"] == "2026-12-03", name
    assert set(load_pricing(env={}).models) == EXPECTED_MODELS


@pytest.mark.parametrize(
    ("model", "rates"),
    [
        ("claude-opus-5-5", (4.0, 20.0, 5.0, 8.0, 0.2)),
        ("claude-opus-5-20260723", (5.0, 25.0, 6.25, 10.0, 0.5)),  # not Opus 5.5: the boundary is a '-'
        ("claude-fable-5-2", (8.0, 40.0, 10.0, 16.0, 0.2)),
        ("claude-fable-5-1", (10.0, 50.0, 12.5, 20.0, 0.25)),
        ("claude-sonnet-5-5", (2.0, 10.0, 2.5, 4.0, 0.1)),
        ("claude-sonnet-5", (2.0, 10.0, 2.5, 4.0, 0.2)),
        ("claude-haiku-5-5", (0.1, 0.5, 0.125, 0.2, 0.01)),
        ("claude-opus-4-6[1m]", (5.0, 25.0, 6.25, 10.0, 0.5)),  # a context-window suffix is not a new model
    ],
)
def test_lookup_of_current_models(model: str, rates: tuple[float, ...]) -> None:
    p = load_pricing(env={}).lookup(model)
    assert p is not None
    assert (p.input, p.output, p.cache_write_5m, p.cache_write_1h, p.cache_read) == rates


def test_fast_mode_and_long_context_are_priced_per_request() -> None:
    table = load_pricing(env={})
    # Opus 4.6 fast: 1,000 in x $30 + 2,000 out x $150 + 10,000 reads x $3 (prompt 11,000: the 6x tier)
    assert table.cost("claude-opus-4-6", 1_000, 2_000, 0, 10_000, fast=True) == pytest.approx(
        (30_000 + 300_000 + 30_000) / 1e6)
    # the same above 200K prompt tokens: $60 / $225 / reads $6
    assert table.cost("claude-opus-4-6", 1_000, 2_000, 0, 250_000, fast=True) == pytest.approx(
        (60_000 + 450_000 + 1_500_000) / 1e6)
    # standard Opus 4.6 bills 1M context at one rate
    assert table.cost("claude-opus-4-6", 1_000, 2_000, 0, 250_000) == pytest.approx(
        (5_000 + 50_000 + 125_000) / 1e6)
    # Sonnet 4.5 above 200K: $6 in, $22.50 out, 1h writes $12, reads $0.60 on every token of the request
    assert table.cost("claude-sonnet-4-5-20250929", 1_000, 1_000, 50_000, 150_000, cache_creation_1h=50_000) == (
        pytest.approx((6_000 + 22_500 + 600_000 + 90_000) / 1e6))
    # exactly at the threshold is not above it
    assert table.cost("claude-sonnet-4-5", 0, 0, 0, 200_000) == pytest.approx(0.06)
    # Haiku 5.5's band starts above 100K
    assert table.cost("claude-haiku-5-5", 0, 1_000_000, 0, 100_001) == pytest.approx(2.5 + 100_001 * 0.05 / 1e6)
    # a model without fast rates pays its standard rates when it ran fast
    assert table.cost("claude-sonnet-4-6", 1_000, 0, 0, 0, fast=True) == pytest.approx(0.003)


def test_web_search_is_priced_per_thousand_and_only_for_known_models() -> None:
    table = load_pricing(env={})
    assert table.cost("claude-haiku-4-5", 0, 0, 0, 0, web_search_requests=3) == pytest.approx(0.03)
    assert table.cost("gpt-4o", 0, 0, 0, 0, web_search_requests=3) is None


def test_variants_fill_missing_tiers_for_sql() -> None:
    table = load_pricing(env={})
    rows, std_th, fast_th = table.models["claude-opus-4-6"].variants()
    assert (std_th, fast_th) == (0, 200_000)
    assert rows == [5.0, 25.0, 6.25, 10.0, 0.5, 5.0, 25.0, 6.25, 10.0, 0.5,
                    30.0, 150.0, 37.5, 60.0, 3.0, 60.0, 225.0, 75.0, 120.0, 6.0]
    rows, std_th, fast_th = table.models["claude-sonnet-4"].variants()
    assert (std_th, fast_th) == (200_000, 200_000) and rows[10:] == rows[:10]
    assert table.thresholds() == [100_000, 200_000]


@pytest.mark.parametrize("model", ["gpt-4o", "", None, "claude-opus-45", "claude-opus"])
def test_unknown_models_have_no_price(model: str | None) -> None:
    table = load_pricing(env={})
    assert table.lookup(model) is None
    assert table.cost(model, 10, 10, 10, 10) is None


def test_cost_arithmetic_splits_cache_writes_by_ttl() -> None:
    table = load_pricing(env={})
    # opus 4.6: 1,000 in x $5 + 2,000 out x $25 + (30,000 - 10,000) 5m writes x $6.25 + 10,000 1h writes x $10
    # + 400,000 reads x $0.5, per million tokens
    got = table.cost("claude-opus-4-6", 1_000, 2_000, 30_000, 400_000, cache_creation_1h=10_000)
    assert got == pytest.approx((5_000 + 50_000 + 125_000 + 100_000 + 200_000) / 1e6)
    # no TTL breakdown (Claude Code 1.0.31): every cache write is a 5-minute write (100K: below the
    # long-context threshold, which test_fast_mode_and_long_context_are_priced_per_request covers)
    assert table.cost("claude-sonnet-4-20250514", 0, 0, 100_000, 0) == pytest.approx(0.375)


def test_override_file_in_data_dir_merges_over_bundled(tmp_path: Path) -> None:
    (tmp_path / "pricing.json").write_text(
        json.dumps(
            {
                "date": "2027-01-01",
                "models": {
                    "claude-opus-4-6": {"input": 4, "output": 20, "cache_write_5m": 5, "cache_write_1h": 8, "cache_read": 0.4},
                    "claude-next-1": {"input": 1, "output": 2, "cache_write_5m": 3, "cache_write_1h": 4, "cache_read": 0.5},
                },
            }
        )
    )
    table = load_pricing(data_dir=tmp_path, env={})
    assert table.date == "2027-01-01"
    assert "ccusage" in table.source  # the override gave none: the bundled source stays
    assert table.lookup("claude-opus-4-6") == ModelPrice(4.0, 20.0, 5.0, 8.0, 0.4)
    assert table.lookup("claude-next-1-20270101") == ModelPrice(1.0, 2.0, 3.0, 4.0, 0.5)
    assert table.lookup("claude-haiku-4-5-20251001") == ModelPrice(1.0, 5.0, 1.25, 2.0, 0.1)
    assert table.origins == (str(BUNDLED_PRICING), str(tmp_path / "pricing.json"))


def test_env_override_wins_over_data_dir(tmp_path: Path) -> None:
    doc = {"models": {"claude-opus-4-6": {"input": 1, "output": 1, "cache_write_5m": 1, "cache_write_1h": 1, "cache_read": 1}}}
    (tmp_path / "pricing.json").write_text(json.dumps({"models": {}}))
    explicit = tmp_path / "mine.json"
    explicit.write_text(json.dumps(doc))
    table = load_pricing(data_dir=tmp_path, env={PRICING_ENV: str(explicit)})
    assert table.lookup("claude-opus-4-6") == ModelPrice(1.0, 1.0, 1.0, 1.0, 1.0)
    assert table.origins[-1] == str(explicit)


def test_env_override_must_exist(tmp_path: Path) -> None:
    with pytest.raises(PricingError, match="does not name a file"):
        load_pricing(data_dir=tmp_path, env={PRICING_ENV: str(tmp_path / "absent.json")})


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"prices": {}}, "expected an object with a 'models' object"),
        ({"models": {"m": {"input": 1}}}, "lacks output, cache_write_5m, cache_write_1h, cache_read"),
        (
            {"models": {"m": {"input": -1, "output": 1, "cache_write_5m": 1, "cache_write_1h": 1, "cache_read": 1}}},
            "input must be a non-negative number",
        ),
        (
            {"models": {"m": {"input": "1", "output": 1, "cache_write_5m": 1, "cache_write_1h": 1, "cache_read": 1}}},
            "input must be a non-negative number",
        ),
        (
            {"models": {"m": {"input": 1, "output": 1, "cache_write_5m": 1, "cache_write_1h": 1, "cache_read": 1,
                              "long_contxt": {}}}},
            "unknown key 'long_contxt'",
        ),
        (
            {"models": {"m": {"input": 1, "output": 1, "cache_write_5m": 1, "cache_write_1h": 1, "cache_read": 1,
                              "long_context": {"input": 1, "output": 1, "cache_write_5m": 1, "cache_write_1h": 1,
                                               "cache_read": 1}}}},
            "long_context needs a positive integer threshold",
        ),
        (
            {"models": {"m": {"input": 1, "output": 1, "cache_write_5m": 1, "cache_write_1h": 1, "cache_read": 1,
                              "fast": {"input": 1}}}},
            "model 'm' fast lacks output",
        ),
        ({"web_search_per_1000": -1, "models": {}}, "web_search_per_1000 must be a non-negative number"),
    ],
)
def test_invalid_documents_are_refused(doc: dict, message: str) -> None:
    with pytest.raises(PricingError, match=message):
        parse_pricing(doc, "x.json")


def test_unreadable_override_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pricing.json").write_text("{not json")
    with pytest.raises(PricingError, match="cannot read pricing file"):
        load_pricing(data_dir=tmp_path, env={})
