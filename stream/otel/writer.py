"""OTel messages (ccstream.otel) into the exporter's tables: one INSERT per table per batch.

Blocking, meant for a thread (chDB has no async client). Each insert carries `<batch token>:<table>` as its
insert_deduplication_token, so a batch re-delivered after a crash is dropped at insert time; copies that
still arrive (a retried export in another batch) merge by RecordId (stream/store/otel_schema.py). A batch
ClickHouse refuses for its content is bisected down to the refused rows, which are logged with the reason
and dropped so the partition goes on; ClickHouseUnavailable propagates to the sink's retry loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from stream.contract.otel_record import TABLES, OtelRecord
from stream.store.client import ClickHouse, ClickHouseRejected

log = logging.getLogger("ccstream.otel.writer")


def rows_by_table(records: Sequence[OtelRecord]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        for table, rows in rec.tables.items():
            if table in TABLES:
                out.setdefault(table, []).extend(rows)
    return out


def write_otel(ch: ClickHouse, records: Sequence[OtelRecord], token: str | None) -> int:
    """Every row of the records into its table; returns the rows stored."""
    stored = 0
    for table, rows in sorted(rows_by_table(records).items()):
        stored += _insert(ch, table, rows, None if token is None else f"{token}:{table}")
    return stored


def _insert(ch: ClickHouse, table: str, rows: list[dict[str, Any]], token: str | None) -> int:
    columns = sorted({c for r in rows for c in r})

    def attempt(lo: int, hi: int, tok: str | None) -> int:
        batch = [tuple(r.get(c) for c in columns) for r in rows[lo:hi]]
        try:
            ch.insert(table, batch, columns, settings={"insert_deduplication_token": tok} if tok else None)
            return hi - lo
        except ClickHouseRejected as exc:
            if hi - lo == 1:
                log.error("%s row %s refused by ClickHouse, dropped: %s", table, rows[lo].get("RecordId"),
                          str(exc)[:500])
                return 0
        mid = (lo + hi) // 2
        return (attempt(lo, mid, None if tok is None else f"{tok}:{lo}-{mid}")
                + attempt(mid, hi, None if tok is None else f"{tok}:{mid}-{hi}"))

    return attempt(0, len(rows), token) if rows else 0
