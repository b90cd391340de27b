"""The hand-written gold data: every quote is verbatim in its source and inside one clause, and gold is
empty exactly for not_covered and no_violation items (evals/check_gold.py, run in CI)."""

from __future__ import annotations

import json
import sys

import pytest

from policyqa import normalise_for_match
from policyqa._config import PROJECT_ROOT

CORPUS = PROJECT_ROOT / "corpus"
AUTHORING = sorted((PROJECT_ROOT / "evals" / "authoring").glob("*.jsonl"))


@pytest.mark.parametrize("path", AUTHORING, ids=lambda p: p.name)
def test_every_gold_item_passes_the_gold_checker(path):
    sys.path.insert(0, str(PROJECT_ROOT / "evals"))
    try:
        from check_gold import problems_in
    finally:
        sys.path.pop(0)
    count, problems = problems_in([path])
    assert count > 0 and problems == []


def test_the_checker_catches_a_quote_that_is_not_in_the_source(tmp_path):
    sys.path.insert(0, str(PROJECT_ROOT / "evals"))
    try:
        from check_gold import problems_in
    finally:
        sys.path.pop(0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "zz-1", "kind": "message", "text": "fake ids", "expected_verdict": "violation",
                               "gold": [{"quote": "words no policy contains", "file": "000_ab84435bec418a5c.txt"}]}) + "\n")
    _, problems = problems_in([bad])
    assert problems and "is not in source file" in problems[0]


def test_glossary_targets_are_policy_words():
    glossary = {k: v for k, v in json.loads((CORPUS / "chat_glossary.json").read_text()).items() if not k.startswith("_")}
    corpus = " ".join(normalise_for_match(p.read_text()) for p in CORPUS.glob("*.txt"))
    missing = [word for value in glossary.values() for word in value.lower().split() if word not in corpus]
    assert not missing, missing
