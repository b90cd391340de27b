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


def test_the_gold_audit_adds_existing_clauses_to_existing_items_and_the_splits_carry_them():
    """evals/authoring/audit/: each addition names a parsed clause and an authored item, and dev/test
    hold exactly the authors' gold plus the audit's additions, marked as such."""
    from policyqa import load_settings
    from policyqa._indexing import load_clauses

    clause_ids = {c.clause_id for c in load_clauses(load_settings())}
    authored = {json.loads(line)["id"] for path in AUTHORING for line in path.read_text(encoding="utf-8").splitlines()
                if line.strip()}
    additions: dict[str, set[str]] = {}
    for path in sorted((PROJECT_ROOT / "evals" / "authoring" / "audit").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            assert row["id"] in authored, row["id"]
            for entry in row["add"]:
                assert entry["clause"] in clause_ids, (row["id"], entry["clause"])
                additions.setdefault(row["id"], set()).add(entry["clause"])
    assert additions
    marked: dict[str, set[str]] = {}
    for split in ("dev", "test"):
        for line in (PROJECT_ROOT / "evals" / "datasets" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
            item = json.loads(line)
            audited = {g["clause"] for g in item["gold"] if g.get("audit")}
            if audited:
                marked[item["id"]] = audited
    assert marked == additions  # nothing lost, nothing invented
