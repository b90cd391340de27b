"""The hand-written data files: every quote is verbatim in its source and lands in exactly one clause.

This replaces the authoring helpers' standalone checkers: it uses the project's own normalisation
(`normalise_for_match`) and runs in CI."""

from __future__ import annotations

import json

import pytest

from policyqa import load_documents, load_settings, normalise_for_match
from policyqa._config import PROJECT_ROOT
from policyqa._indexing import clauses_for_quote, load_clauses

CORPUS = PROJECT_ROOT / "corpus"


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def clauses():
    return load_clauses(load_settings())


@pytest.mark.parametrize("name", ["clause_examples.jsonl", "exception_examples.jsonl"])
def test_every_example_quote_is_in_its_source_and_in_one_clause(name, clauses):
    sources = {doc.document_id: doc.source_file for doc, _ in load_documents(CORPUS)}
    rows = _rows(CORPUS / name)
    assert len(rows) >= 25
    for row in rows:
        source = normalise_for_match((CORPUS / "sources" / row["file"]).read_text(encoding="utf-8"))
        assert normalise_for_match(row["quote"]) in source, row["quote"]
        owners = clauses_for_quote(row["quote"], row["file"], clauses, sources)
        assert len(owners) == 1, (row["quote"], [c.clause_id for c in owners])
        assert 3 <= len(row["examples"]) <= 6 and len(set(row["examples"])) == len(row["examples"])


def test_benign_examples_are_plain_messages():
    rows = _rows(CORPUS / "benign_examples.jsonl")
    assert len(rows) >= 60 and all(row["text"].strip() for row in rows)


@pytest.mark.parametrize("name", ["questions.jsonl", "messages.jsonl"])
def test_every_gold_quote_is_in_its_source_file(name):
    for item in _rows(PROJECT_ROOT / "evals" / "authoring" / name):
        for gold in item["gold"]:
            source = normalise_for_match((CORPUS / "sources" / gold["file"]).read_text(encoding="utf-8"))
            assert normalise_for_match(gold["quote"]) in source, (item["id"], gold["quote"])
        assert (item["gold"] == []) == (item["expected_verdict"] in {"not_covered", "no_violation"}), item["id"]


def test_glossary_targets_are_policy_words():
    glossary = {k: v for k, v in json.loads((CORPUS / "chat_glossary.json").read_text()).items() if not k.startswith("_")}
    corpus = " ".join(normalise_for_match(p.read_text()) for p in CORPUS.glob("*.txt"))
    missing = [word for value in glossary.values() for word in value.lower().split() if word not in corpus]
    assert not missing, missing
