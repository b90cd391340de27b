"""Batches of questions or messages (CSV or JSONL rows with `id` and `text`), shared by the CLI
and the web app so neither re-implements reading, running or error rows."""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ._errors import InvalidInputError, PolicyQAError
from ._inputs import _SURROGATE_RE

CSV_FIELD_LIMIT = 16 * 1024 * 1024
"""Characters a CSV field may hold (the csv module's default, 131,072, raised an uncaught
_csv.Error, issue 13). A longer field is an error row; shorter over-long texts are refused row by
row by check_text's own limit."""



def read_rows(data: bytes | str, filename: str) -> list[dict[str, Any]]:
    """Rows {"id", "text"} from CSV or JSONL content; a broken row becomes {"id", "error"}.

    A row without an id gets `line-N` (N its line, or its record number in a CSV), suffixed
    (`line-N-2`, ...) when another row already has that id, so no two rows share a made-up id.
    Invalid UTF-8 becomes U+FFFD. In a CSV, a quote out of place (an unbalanced quote would
    swallow the rows after it into one text) and a row with more fields than the header are
    error rows, not merged or truncated text; what follows is read as usual.

    Raises:
        InvalidInputError: the file is neither .csv nor .jsonl, or the CSV has no `text` column.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.removeprefix("\ufeff")  # a BOM from Excel would rename the first column
    suffix = filename.lower().rsplit(".", 1)[-1]
    if suffix == "csv":
        parsed = _csv_rows(text, filename)
    elif suffix in {"jsonl", "json", "ndjson"}:
        parsed = _jsonl_rows(text)
    else:
        raise InvalidInputError(f"{filename}: upload a .csv or .jsonl file")
    return _with_ids(parsed)


def _csv_rows(text: str, filename: str) -> Iterator[tuple[int, Any, dict[str, Any]]]:
    """(number, given id or None, row without id) per CSV record; number counts records from 2."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise InvalidInputError(f"{filename}: the header row is not valid CSV: {exc}") from exc
    if not header or "text" not in header:
        raise InvalidInputError(f"{filename} needs a header row with a 'text' column (and optionally 'id')")
    number = 1
    while True:
        first = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            where = f"line {first}" if reader.line_num <= first else f"lines {first}-{reader.line_num}"
            problem = (f"a field over {CSV_FIELD_LIMIT:,} characters" if "field limit" in str(exc)
                       else f"not valid CSV ({exc}); check the quotes")
            yield number, None, {"error": f"{where}: {problem}"}
            continue
        if not fields:  # a blank line, as csv.DictReader skips it
            continue
        number += 1
        row = dict(zip(header, fields))
        if len(fields) > len(header):
            yield number, row.get("id") or None, {
                "error": f"line {first} has {len(fields)} fields but the header has {len(header)}; "
                         f"quote a text that holds a comma"}
            continue
        yield number, row.get("id") or None, {"text": row.get("text") or ""}


def _jsonl_rows(text: str) -> Iterator[tuple[int, Any, dict[str, Any]]]:
    """(line number, given id or None, row without id) per non-blank JSONL line. Lines end at \\n
    only: JSON text may hold U+2028 and other characters str.splitlines() would split at."""
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except RecursionError:
            yield number, None, {"error": f"line {number} is not valid JSON: nested too deeply"}
            continue
        except ValueError as exc:
            yield number, None, {"error": f"line {number} is not valid JSON: {exc}"}
            continue
        if not isinstance(row, dict):
            yield number, None, {"error": f"line {number} is not valid JSON: not a JSON object"}
            continue
        yield number, row.get("id") or None, {"text": row.get("text") if row.get("text") is not None else ""}


def _with_ids(parsed: Iterable[tuple[int, Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows with their given ids, or made-up ones that no given id (or other made-up one) repeats."""
    parsed = list(parsed)
    taken = {_clean_id(given) for _, given, _ in parsed if given is not None}
    rows = []
    for number, given, row in parsed:
        if given is not None:
            row_id = _clean_id(given)
        else:
            row_id, suffix = f"line-{number}", 1
            while row_id in taken:
                suffix += 1
                row_id = f"line-{number}-{suffix}"
            taken.add(row_id)
        rows.append({"id": row_id, **row})
    return rows


def _clean_id(value: Any) -> str:
    """An id as text that can be written as UTF-8 (a JSON "\\ud800" escape cannot)."""
    return _SURROGATE_RE.sub("\ufffd", str(value))


def done_ids(path: Path) -> Counter[str]:
    """How often each id occurs in an output file a rerun appends to, so the rerun resumes.

    A last line without its newline was cut off when a run was killed mid-write: it is
    truncated away (else the next record would be glued to it) and its row is redone. Lines
    that are not UTF-8 JSON objects with an id count as nothing.
    """
    if not path.is_file():
        return Counter()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as handle:
            handle.truncate(cut)
            handle.flush()
            os.fsync(handle.fileno())
        data = data[:cut]
    done: Counter[str] = Counter()
    for line in data.split(b"\n"):
        try:
            done[_clean_id(json.loads(line.decode("utf-8"))["id"])] += 1
        except (ValueError, KeyError, TypeError, IndexError, RecursionError):
            continue
    return done


def pending(rows: list[dict[str, Any]], done: Counter[str]) -> list[dict[str, Any]]:
    """The rows not yet in the output: the k-th row with an id is done when the id was written k
    times, so repeated ids (x, x, y with one x written) lose no row."""
    seen: Counter[str] = Counter()
    left = []
    for row in rows:
        seen[row["id"]] += 1
        if seen[row["id"]] > done[row["id"]]:
            left.append(row)
    return left


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
