"""Batches of questions or messages (CSV or JSONL rows with `id` and `text`), shared by the CLI
and the web app so neither re-implements reading, running or error rows."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from typing import Any

from ._errors import InvalidInputError, PolicyQAError


def read_rows(data: bytes | str, filename: str) -> list[dict[str, Any]]:
    """Rows {"id", "text"} from CSV or JSONL content; a broken row becomes {"id", "error"}.

    Raises:
        InvalidInputError: the file is neither .csv nor .jsonl, or the CSV has no `text` column.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    suffix = filename.lower().rsplit(".", 1)[-1]
    rows: list[dict[str, Any]] = []
    if suffix == "csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "text" not in reader.fieldnames:
            raise InvalidInputError(f"{filename} needs a header row with a 'text' column (and optionally 'id')")
        for number, row in enumerate(reader, start=2):
            rows.append({"id": str(row.get("id") or f"line-{number}"), "text": row.get("text") or ""})
        return rows
    if suffix not in {"jsonl", "json", "ndjson"}:
        raise InvalidInputError(f"{filename}: upload a .csv or .jsonl file")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not a JSON object")
            rows.append({"id": str(row.get("id") or f"line-{number}"), "text": row.get("text") if row.get("text") is not None else ""})
        except ValueError as exc:
            rows.append({"id": f"line-{number}", "error": f"line {number} is not valid JSON: {exc}"})
    return rows


def run_rows(rows: list[dict[str, Any]], decide: Callable[[str], Any],
             progress: Callable[[int, int], None] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one record per row: the answer's JSON plus `id`, or `id` and `error`. Never stops early."""
    for done, row in enumerate(rows, start=1):
        record: dict[str, Any] = {"id": row["id"]}
        if "error" in row:
            record["error"] = row["error"]
        else:
            try:
                record.update(decide(str(row.get("text", ""))).model_dump(mode="json"))
            except PolicyQAError as exc:
                record["error"] = str(exc)
        if progress:
            progress(done, len(rows))
        yield record
