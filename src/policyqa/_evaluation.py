"""Evaluation stage: gold datasets -> metrics, against baselines, with confidence intervals.

Gold citations are clause ids or verbatim quotes; a cited clause matches a quote when its text
contains the quote after both pass through `normalise_for_match`.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from ._corpus import normalise_for_match
from ._errors import PolicyQAError
from ._models import Clause, EvalItem

QUESTION_VERDICTS = {"prohibited", "allowed", "informational", "not_covered"}
MESSAGE_VERDICTS = {"violation", "no_violation"}


class DatasetError(PolicyQAError):
    """An evaluation dataset is missing, malformed or inconsistent."""


def load_dataset(paths: list[Path]) -> list[EvalItem]:
    """Read and validate JSONL gold items from files or folders (every *.jsonl inside).

    Raises:
        DatasetError: a file is missing, a line is invalid, a verdict does not fit its kind, or an id repeats.
    """
    items: list[EvalItem] = []
    for path in paths:
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        if not files or not all(f.is_file() for f in files):
            raise DatasetError(f"no dataset at {path}")
        for file in files:
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    item = EvalItem.model_validate(json.loads(line))
                except (ValueError, ValidationError) as exc:
                    raise DatasetError(f"{file.name} line {number}: {exc}") from exc
                allowed = QUESTION_VERDICTS if item.kind == "question" else MESSAGE_VERDICTS
                if item.expected_verdict not in allowed:
                    raise DatasetError(f"{file.name} line {number}: verdict {item.expected_verdict!r} does not fit kind {item.kind!r}")
                items.append(item)
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DatasetError(f"item id {item.id!r} appears twice")
        seen.add(item.id)
    return items


class GoldMatcher:
    """Decides which clauses satisfy an item's gold citations."""

    def __init__(self, clauses: list[Clause]):
        self._normalised = {c.clause_id: normalise_for_match(c.text) for c in clauses}

    def gold_clause_ids(self, item: EvalItem) -> list[set[str]]:
        """For each gold citation, the set of clause ids that would satisfy it."""
        out = []
        for gold in item.gold:
            if gold.clause:
                out.append({gold.clause})
            elif gold.quote:
                quote = normalise_for_match(gold.quote)
                out.append({cid for cid, text in self._normalised.items() if quote and quote in text})
        return out

    def matches(self, clause_id: str, item: EvalItem) -> bool:
        return any(clause_id in ids for ids in self.gold_clause_ids(item))
