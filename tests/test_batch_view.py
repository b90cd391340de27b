"""The app's batch table: filters, downloads of what is shown, links to clauses (no browser, no model)."""

from __future__ import annotations

import csv
import io
import json
import sys

from policyqa._config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "app"))
from batch_view import batch_table, filtered, shown_csv, shown_jsonl  # noqa: E402

RECORDS = [
    {"id": "a", "verdict": "violation", "confidence": 0.912345, "message": "fake IDs",
     "violations": [{"clause_id": "weixin-standards/II.9.2", "quote": "trading of identity cards"}], "record_id": "r1"},
    {"id": "b", "verdict": "no_violation", "confidence": 1.0, "message": "lunch?", "violations": [], "record_id": "r2"},
    {"id": "c", "error": "the message is empty"},
]


def test_filters_apply_to_the_table_and_to_both_downloads():
    table = batch_table(RECORDS)
    shown = filtered(table, ["violation", "error"], "II.9")
    assert list(shown["id"]) == ["a"]
    assert [json.loads(line)["id"] for line in shown_jsonl([RECORDS[i] for i in shown.index]).splitlines()] == ["a"]
    rows = list(csv.DictReader(io.StringIO(shown_csv(shown))))
    assert [r["id"] for r in rows] == ["a"] and rows[0]["clauses"] == "weixin-standards/II.9.2"
    assert "first clause" not in rows[0]
    everything = filtered(table, ["violation", "no_violation", "error"], "")
    assert list(everything["id"]) == ["a", "b", "c"]


def test_each_row_links_to_its_first_clause_with_the_quote():
    table = batch_table(RECORDS)
    assert table.loc[0, "first clause"] == ("?page=Policies&clause=weixin-standards/II.9.2"
                                            "&quote=trading%20of%20identity%20cards")
    assert bool(table.isna().loc[1, "first clause"]) and table.loc[2, "verdict"] == "error"
    assert table["confidence"].dtype.kind == "f"  # numbers: the table formats them alike
