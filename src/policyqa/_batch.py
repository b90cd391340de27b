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


ROWS_PER_CALL = 64
"""Rows handed to the batch function at once (the engine's own batch: _ruling.BATCH); a rerun
resumes after the last record written, so at most this many rows are redone after a kill."""


Recorder = Callable[[list[Any], list[str]], list[dict[str, Any]]]
"""Logs a chunk's answers (with their row ids) to the audit trail and returns, per answer, the
fields its output record carries (record id, time, index fingerprint, model): _store.audit_recorder."""


def run_rows(rows: list[dict[str, Any]], decide_many: Callable[[list[str]], list[Any]],
             progress: Callable[[int, int], None] | None = None, record: Recorder | None = None) -> Iterator[dict[str, Any]]:
    """Yield one record per row, in order: the answer's JSON plus `id`, or `id` and `error`.

    `decide_many` answers a list of texts at once (ask_many or judge_many bound to an index). A
    chunk in which one text is refused is answered row by row, so a bad row costs only itself.
    `record`, when given, logs each chunk's answers before they are yielded: an answer written to
    the output is already in the audit trail. Never stops early."""
    for start in range(0, len(rows), ROWS_PER_CALL):
        chunk = rows[start : start + ROWS_PER_CALL]
        texts = [str(row.get("text", "")) for row in chunk if "error" not in row]
        try:
            answers: list[Any] = decide_many(texts)
        except PolicyQAError:
            answers = [_one(decide_many, text) for text in texts]
        answered = [row["id"] for row in chunk if "error" not in row]
        kept = [(row_id, a) for row_id, a in zip(answered, answers) if not isinstance(a, PolicyQAError)]
        stamps = iter(record([a for _, a in kept], [row_id for row_id, _ in kept]) if record and kept else [])
        results = iter(answers)
        for done, row in enumerate(chunk, start=start + 1):
            line: dict[str, Any] = {"id": row["id"]}
            if "error" in row:
                line["error"] = row["error"]
            elif isinstance(answer := next(results), PolicyQAError):
                line["error"] = str(answer)
            else:
                line.update(answer.model_dump(mode="json"))
                line.update(next(stamps, {}))
            if progress:
                progress(done, len(rows))
            yield line


def _one(decide_many: Callable[[list[str]], list[Any]], text: str) -> Any:
    """The answer for one text, or the PolicyQAError that refused it."""
    try:
        return decide_many([text])[0]
    except PolicyQAError as exc:
        return exc
