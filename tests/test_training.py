"""Training data: validated on load, covering every prohibiting clause, and never a copy of an eval item."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from policyqa import CorpusError, TrainingItem, load_settings, load_training
from policyqa._config import PROJECT_ROOT
from policyqa._indexing import load_clauses
from policyqa._training import (NEAR_DUPLICATE_BIGRAMS, NEAR_DUPLICATE_COSINE, check_training_files, item_problems,
                                near_duplicates)

CORPUS = PROJECT_ROOT / "corpus"


@pytest.fixture(scope="module")
def clauses():
    return load_clauses(load_settings())


@pytest.fixture(scope="module")
def items(clauses):
    return load_training(CORPUS, clauses)


def _item(**changes) -> TrainingItem:
    base = {"id": "t-1", "kind": "message", "text": "fake ID cards, any province, add my wx", "label": "violation",
            "clauses": [{"clause_id": "weixin-standards/II.9.2", "quote": "trading of identity cards, passports"}]}
    return TrainingItem.model_validate({**base, **changes})


# --- validation ------------------------------------------------------------------------------------


def test_a_valid_item_has_no_problems(clauses):
    assert item_problems(_item(), {c.clause_id: c for c in clauses}) == []


@pytest.mark.parametrize("changes, problem", [
    ({"clauses": [{"clause_id": "weixin-standards/II.99", "quote": "trading of identity cards"}]}, "unknown clause id"),
    ({"clauses": [{"clause_id": "weixin-standards/II.9.2", "quote": "selling fake identity cards"}]}, "is not in the text of"),
    ({"kind": "question"}, "does not fit a question"),
    ({"label": "prohibited"}, "does not fit a message"),
    ({"clauses": []}, "must name the clauses"),
    ({"kind": "question", "label": "not_covered"}, "cites no clause"),
    ({"label": "no_violation", "clauses": []}, "names the clause it resembles"),
    ({"label": "no_violation", "clauses": [], "near": "weixin-standards/nowhere"}, "near: unknown clause id"),
])
def test_each_kind_of_bad_item_is_named(clauses, changes, problem):
    assert any(problem in p for p in item_problems(_item(**changes), {c.clause_id: c for c in clauses}))


def test_everyday_chat_needs_no_near_clause(clauses):
    chat = _item(label="no_violation", clauses=[], style="everyday")
    assert item_problems(chat, {c.clause_id: c for c in clauses}) == []


def test_quotes_match_after_the_documented_normalisation(clauses):
    shouty = _item(clauses=[{"clause_id": "weixin-standards/II.9.2", "quote": "TRADING   of identity cards"}])
    assert item_problems(shouty, {c.clause_id: c for c in clauses}) == []


def test_bad_files_are_reported_by_file_and_line_and_good_items_kept(clauses, tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = _item().model_dump(mode="json")
    path.write_text("\n".join([json.dumps(good), "{not json", json.dumps({**good, "id": "t-2"}),
                               json.dumps({**good, "id": "t-1", "text": "another text"})]) + "\n", encoding="utf-8")
    valid, problems = check_training_files([path], clauses)
    assert [i.id for i in valid] == ["t-1"]
    assert any(p.startswith(f"{path}:2:") for p in problems)
    assert any(p.startswith(f"{path}:3:") and "same text" in p for p in problems)
    assert any(p.startswith(f"{path}:4:") and "already used" in p for p in problems)


def test_loading_invalid_training_data_is_a_corpus_error(clauses, tmp_path):
    folder = tmp_path / "training"
    folder.mkdir()
    (folder / "x.jsonl").write_text(json.dumps({"id": "a", "kind": "message", "text": "hi", "label": "maybe"}) + "\n")
    with pytest.raises(CorpusError, match=r"x.jsonl:1"):
        load_training(tmp_path, clauses)


def test_the_committed_training_data_is_valid(items):
    assert len(items) > 10_000


# --- coverage (issue: a training set separate from the evaluation data) ----------------------------------


def _exempt(clause_id: str) -> bool:
    exemptions = json.loads((CORPUS / "training" / "exemptions.json").read_text())
    return (clause_id in exemptions["states_no_prohibition"]["clause_ids"]
            or any(clause_id.startswith(p) for p in exemptions["no_synthetic_violations"]["clause_prefixes"]))


def test_every_prohibiting_clause_has_six_messages_and_two_questions(clauses, items):
    english = [i for i in items if i.lang == "en"]
    messages = Counter(c for i in english if i.label == "violation" for c in i.clause_ids)
    questions = Counter(c for i in english if i.label == "prohibited" for c in i.clause_ids)
    thin = [c.clause_id for c in clauses if c.stance == "prohibits" and not _exempt(c.clause_id)
            and (messages[c.clause_id] < 6 or questions[c.clause_id] < 2)]
    assert thin == []


def test_every_prohibiting_clause_is_covered_in_chinese_too(clauses, items):
    chinese = Counter(c for i in items if i.lang == "zh" and i.label in {"violation", "prohibited"} for c in i.clause_ids)
    missing = [c.clause_id for c in clauses if c.stance == "prohibits" and not _exempt(c.clause_id) and not chinese[c.clause_id]]
    assert len(missing) <= 10, missing


def test_benign_near_misses_span_every_section(clauses, items):
    section = {c.clause_id: (c.document_id, c.heading_path[0] if c.heading_path else "") for c in clauses}
    near = [i for i in items if i.lang == "en" and i.label == "no_violation" and not i.clauses and i.near]
    assert len(near) >= 1500
    covered = {section[i.near] for i in near}
    prohibiting_sections = {section[c.clause_id] for c in clauses if c.stance == "prohibits" and not _exempt(c.clause_id)}
    assert prohibiting_sections - covered == set()


def test_permitted_informational_and_uncovered_cases_are_there_in_number(items):
    english = [i for i in items if i.lang == "en"]
    assert sum(1 for i in english if i.is_permitted_case or i.label == "allowed") >= 300
    assert sum(1 for i in english if i.label == "informational") >= 400
    assert sum(1 for i in english if i.label == "not_covered") >= 300


# --- separation from the evaluation data ------------------------------------------------------------------


def _eval_texts() -> list[str]:
    return [json.loads(line)["text"] for name in ("dev", "test")
            for line in (PROJECT_ROOT / "evals" / "datasets" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]


def test_the_overlap_check_finds_a_planted_copy(fake_embedder):
    encode = fake_embedder.encode
    found = near_duplicates(["can I post pictures of my lunch to moments?", "totally different words here", "卖假身份证加我微信"],
                            ["Can I post pictures of my lunch to Moments?", "出售假身份证，加我微信"], encode)
    assert [(i, j) for i, j, _ in found] == [(0, 0), (2, 1)]


@pytest.mark.slow
def test_no_training_item_is_a_near_duplicate_of_an_eval_item(items):
    from policyqa import PACKAGED_MODEL, SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(PACKAGED_MODEL)
    found = near_duplicates([i.text for i in items], _eval_texts(), lambda texts: embedder.encode(texts, batch_size=64),
                            cosine=NEAR_DUPLICATE_COSINE, bigrams=NEAR_DUPLICATE_BIGRAMS)
    assert [(items[i].id, round(score, 3)) for i, _, score in found] == []

