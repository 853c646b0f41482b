"""stream/cli/sql.py: a query's own FORMAT passes through; --format json is one document."""

from __future__ import annotations

import json

from stream.cli.sql import as_document, split_format


def test_trailing_format_is_taken_off_and_named() -> None:
    assert split_format("SELECT 1 FORMAT JSON") == ("SELECT 1", "JSON")
    assert split_format("select 1 format PrettyCompact;") == ("select 1", "PrettyCompact")
    assert split_format("SELECT 1\nFORMAT CSVWithNames ;  -- habit\n") == ("SELECT 1", "CSVWithNames")


def test_no_format_or_format_inside_a_string_is_left_alone() -> None:
    assert split_format("SELECT 1") == ("SELECT 1", None)
    assert split_format("SELECT 'x FORMAT JSON'") == ("SELECT 'x FORMAT JSON'", None)
    assert split_format("SELECT formatDateTime(now(), '%Y')") == ("SELECT formatDateTime(now(), '%Y')", None)
    assert split_format("SELECT 1 AS format") == ("SELECT 1 AS format", None)


def test_json_document_from_lines() -> None:
    doc = as_document(b'{"a":1}\n{"a":"2"}\n')
    assert json.loads(doc) == [{"a": 1}, {"a": "2"}]
    assert json.loads(as_document(b"")) == []
