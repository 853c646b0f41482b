"""What `query_guarded` refuses, decided from ClickHouse's AST text (pure)."""

from __future__ import annotations

from stream.store.client import QueryLimits, query_settings, refusal

SELECT_FILE = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 2)
   ExpressionList (children 1)
    Asterisk
   TablesInSelectQuery (children 1)
    TablesInSelectQueryElement (children 1)
     TableExpression (children 1)
      Function file (children 1)
       ExpressionList (children 2)
        Literal \\'/etc/hostname\\'
"""
OUTFILE = """SelectWithUnionQuery (children 2)
 ExpressionList (children 1)
  SelectQuery (children 1)
   ExpressionList (children 1)
    Literal UInt64_1
 Literal \\'/tmp/x\\'
"""
PLAIN = """SelectWithUnionQuery (children 1)
 ExpressionList (children 1)
  SelectQuery (children 1)
   ExpressionList (children 1)
    Function count (children 1)
"""


def test_refusals() -> None:
    assert refusal(PLAIN, "SELECT count() FROM t") is None
    assert "file()" in (refusal(SELECT_FILE) or "")
    assert "OUTFILE" in (refusal(OUTFILE) or "")
    assert "OUTFILE" in (refusal(PLAIN, "SELECT 1 INTO OUTFILE '/tmp/x'") or "")
    assert refusal(PLAIN, "SELECT 'INTO OUTFILE' AS s") is None  # inside a string it is only text
    assert refusal(PLAIN.replace("count", "URL"))  # names compare case-insensitively
    assert refusal(PLAIN.replace("count", "icebergS3"))
    assert refusal(PLAIN.replace("count", "URLHierarchy")) is None  # a string function, not a URL reader
    assert refusal("SYSTEM query\n")
    assert refusal("Set\n")
    assert refusal("BackupQuery (children 2)\n Function File (children 1)\n")
    assert refusal("InsertQuery   (children 1)\n Identifier t\n")  # inline data
    assert refusal("InsertQuery   (children 2)\n Identifier t\n SelectWithUnionQuery (children 1)\n") is None
    assert refusal("CreateQuery d (children 2)\n Identifier d\n Dictionary definition (children 1)\n")
    assert refusal("")
    # a function hidden in SETTINGS, where the AST text does not show it
    assert "disk()" in (refusal(PLAIN, "CREATE TABLE t (x String) ENGINE = MergeTree ORDER BY x "
                                       "SETTINGS disk = disk(type = local, path = '/tmp/d/')") or "")
    assert refusal(PLAIN, "SELECT 'file(x)' AS s") is None
    assert refusal(PLAIN, "ATTACH TABLE x FROM '/etc' (x String) ENGINE = MergeTree ORDER BY x")


def test_readonly_is_the_last_setting() -> None:
    s = query_settings(QueryLimits(2, 10, 100), write=False)
    assert list(s)[-1] == "readonly" and s["readonly"] == 1
    assert s["max_execution_time"] == 2 and s["max_result_rows"] == 10 and s["max_result_bytes"] == 100
    assert "readonly" not in query_settings(QueryLimits(), write=True)
