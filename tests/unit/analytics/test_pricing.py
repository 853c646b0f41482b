"""The bundled price table, model matching, cost arithmetic and the override file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.analytics.pricing import (
    BUNDLED_PRICING,
    PRICING_ENV,
    ModelPrice,
    PricingError,
    load_pricing,
    parse_pricing,
)


def test_bundled_table_is_dated_and_sourced() -> None:
    table = load_pricing(data_dir=None, env={})
    assert table.date == "2026-02-16"
    assert "ccusage 20.0.24" in table.source
    assert table.currency == "USD"
    assert table.origins == (str(BUNDLED_PRICING),)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        # every model name in the fixture corpus
        ("claude-opus-4-6", ModelPrice(5.0, 25.0, 6.25, 10.0, 0.5)),
        ("claude-opus-4-5-20251101", ModelPrice(5.0, 25.0, 6.25, 10.0, 0.5)),
        ("claude-sonnet-4-5-20250929", ModelPrice(3.0, 15.0, 3.75, 6.0, 0.3)),
        ("claude-sonnet-4-20250514", ModelPrice(3.0, 15.0, 3.75, 6.0, 0.3)),
        ("claude-haiku-4-5-20251001", ModelPrice(1.0, 5.0, 1.25, 2.0, 0.1)),
        ("<synthetic>", ModelPrice(0.0, 0.0, 0.0, 0.0, 0.0)),
        # longest key wins: opus 4.1 is not opus 4, opus 4 (dated) is
        ("claude-opus-4-1-20250805", ModelPrice(15.0, 75.0, 18.75, 30.0, 1.5)),
        ("claude-opus-4-20250514", ModelPrice(15.0, 75.0, 18.75, 30.0, 1.5)),
        # provider-prefixed and vertex '@' names
        ("us.anthropic.claude-haiku-4-5-20251001-v1:0", ModelPrice(1.0, 5.0, 1.25, 2.0, 0.1)),
        ("claude-sonnet-4-5@20250929", ModelPrice(3.0, 15.0, 3.75, 6.0, 0.3)),
    ],
)
def test_lookup(model: str, expected: ModelPrice) -> None:
    assert load_pricing(env={}).lookup(model) == expected


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
    # no TTL breakdown (Claude Code 1.0.31): every cache write is a 5-minute write
    assert table.cost("claude-sonnet-4-20250514", 0, 0, 1_000_000, 0) == pytest.approx(3.75)


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
    ],
)
def test_invalid_documents_are_refused(doc: dict, message: str) -> None:
    with pytest.raises(PricingError, match=message):
        parse_pricing(doc, "x.json")


def test_unreadable_override_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pricing.json").write_text("{not json")
    with pytest.raises(PricingError, match="cannot read pricing file"):
        load_pricing(data_dir=tmp_path, env={})
