"""A batch's rulings as a table: filtered, downloadable as what is shown (JSONL or CSV), each row
linking to its first clause. Pure functions, tested without a browser."""

from __future__ import annotations

import json
import re

import pandas as pd

from rendering import clause_link

COLUMNS = ["id", "verdict", "confidence", "clauses", "first clause", "message", "error", "record_id"]


def batch_table(records: list[dict]) -> pd.DataFrame:
    """One row per batch record; confidences as numbers (formatted alike by the table), clause ids joined."""
    return pd.DataFrame([{
        "id": r["id"], "verdict": r.get("verdict", "error"), "confidence": r.get("confidence"),
        "clauses": ", ".join(v["clause_id"] for v in r.get("violations", [])),
        "first clause": clause_link(r["violations"][0]["clause_id"], r["violations"][0]["quote"]) if r.get("violations") else None,
        "message": r.get("message", ""), "error": r.get("error", ""), "record_id": r.get("record_id"),
    } for r in records], columns=COLUMNS)


def filtered(table: pd.DataFrame, verdicts: list[str], clause_contains: str) -> pd.DataFrame:
    return table[table["verdict"].isin(verdicts) & table["clauses"].str.contains(re.escape(clause_contains), na=False)]


def shown_jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def shown_csv(shown: pd.DataFrame) -> str:
    """The rows shown, one per line; the link column is for the screen only."""
    return shown.drop(columns=["first clause"]).to_csv(index=False)
