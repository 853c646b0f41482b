"""OTel messages (ccstream.otel) into the exporter's tables: one INSERT per table per batch.

Blocking, meant for a thread (chDB has no async client). The inserts are one `Commit` of the batch token
(stream/store/commit.py), so a batch re-delivered after a crash is dropped at insert time; copies that still
arrive (a retried export in another batch) merge by RecordId (stream/store/otel_schema.py). Rows ClickHouse
refuses for their content are bisected out there, logged with the reason here and dropped so the partition
goes on; ClickHouseUnavailable propagates to the sink's retry loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from stream.contract.otel_record import TABLES, OtelRecord
from stream.store.client import ClickHouse
from stream.store.commit import Commit, Step

log = logging.getLogger("ccstream.otel.writer")


def rows_by_table(records: Sequence[OtelRecord]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        for table, rows in rec.tables.items():
            if table in TABLES:
                out.setdefault(table, []).extend(rows)
    return out


def write_otel(ch: ClickHouse, records: Sequence[OtelRecord], token: str | None) -> int:
    """Every row of the records into its table, one Commit (stream/store/commit.py: the tokens and the
    bisection are stated there once); returns the rows stored. Refused rows are logged and dropped."""
    commit = Commit(ch, token)
    stored = 0
    for table, rows in sorted(rows_by_table(records).items()):
        columns = sorted({c for r in rows for c in r})
        done, refused = commit.insert(Step.ROWS, table, [tuple(r.get(c) for c in columns) for r in rows], columns)
        stored += done
        for row, reason in refused:
            record_id = row[columns.index("RecordId")] if "RecordId" in columns else "?"
            log.error("%s row %s refused by ClickHouse, dropped: %s", table, record_id, reason[:500])
    return stored
