"""Evidence and learning stages: neighbour votes, segments, features, and cross-fitting that never lets
a training item see itself (fake embedder: no model load)."""

from __future__ import annotations

import numpy as np
import pytest

from policyqa import PolicyIndex, TrainingItem, load_settings
from policyqa._evidence import ROLES, EvidenceSource, clause_votes, role_of, role_votes, split_sentences
from policyqa._learning import training_rows


@pytest.mark.parametrize("label, kind, clauses, role", [
    ("violation", "message", True, "violation"), ("no_violation", "message", False, "benign"),
    ("no_violation", "message", True, "permitted"), ("allowed", "question", True, "permitted"),
    ("prohibited", "question", True, "prohibited"), ("informational", "question", True, "informational"),
    ("not_covered", "question", False, "not_covered"),
])
def test_every_training_label_has_a_role(label, kind, clauses, role):
    refs = [{"clause_id": "weixin-standards/II.9.2", "quote": "identity cards"}] if clauses else []
    item = TrainingItem(id="x", kind=kind, text="tt", label=label, clauses=refs, near=None if clauses else "weixin-standards/II.9.2")
    assert role_of(item) == role


def test_the_closest_neighbours_carry_the_vote():
    bank = np.array([0.90, 0.89, 0.50, 0.20])
    roles = np.array([ROLES.index("violation"), ROLES.index("benign"), ROLES.index("benign"), ROLES.index("violation")])
    votes = role_votes(bank, np.array([0, 1, 2, 3]), roles)
    assert votes.sum() == pytest.approx(1.0)
    assert votes[ROLES.index("violation")] > 0.45 and votes[ROLES.index("benign")] > 0.45  # the far two barely count
    assert role_votes(bank, np.array([], dtype=int), roles).sum() == 0.0


def test_a_second_named_clause_gets_half_the_vote():
    votes = clause_votes(np.array([0.8, 0.8]), np.array([0, 1]), [(7, 9), (7,)])
    assert votes[7] == pytest.approx(1.0) and votes[9] == pytest.approx(0.25)


def test_sentences_are_verbatim_pieces_of_the_message():
    message = "Hi all!  The lift is fixed.\nAlso fapiao for sale, 3% fee。再见！ bye"
    parts = split_sentences(message)
    assert parts == ["Hi all!", "The lift is fixed.", "Also fapiao for sale, 3% fee。", "再见！", "bye"]
    assert all(part in message for part in parts)


@pytest.fixture(scope="module")
def small_index(tmp_path_factory, small_corpus):
    from tests.conftest import FakeEmbedder

    settings = load_settings(corpus_dir=small_corpus, home=tmp_path_factory.mktemp("evidence") / "home")
    index = PolicyIndex(settings, embedder=FakeEmbedder())
    index.build()
    return index.load()


def test_evidence_has_a_score_for_every_clause_and_training_item(small_index):
    source = EvidenceSource(small_index)
    [ev] = source.gather(["selling fake ID cards, add my wx"])
    assert ev.wording.shape == ev.examples.shape == (len(small_index.clauses),)
    assert ev.bank.shape == (len(small_index.examples),)
    assert ev.hits and all(h.clause.clause_id in small_index.position for h in ev.hits)
    features = source.segment_features(ev)
    assert {"wording_prohibit", "nearest_violation", "vote_benign", "question_vote_prohibited", "exception"} <= set(features)
    assert all(np.isfinite(v) for v in features.values())


def test_a_left_out_fold_cannot_be_seen(small_index):
    source = EvidenceSource(small_index)
    item = 0
    fold = int(small_index.example_folds[item])
    text = small_index.examples[item].text
    [seen] = source.gather([text])
    [unseen] = source.gather([text], fold=fold)
    assert seen.bank[item] == pytest.approx(1.0, abs=1e-5)  # it finds itself ...
    assert (unseen.bank[small_index.example_folds == fold] == -1.0).all()  # ... unless its fold is left out
    assert (unseen.bank[small_index.example_folds != fold] == seen.bank[small_index.example_folds != fold]).all()


def test_training_rows_cover_every_item_once(small_index):
    rows = training_rows(small_index)
    messages = sum(1 for i in small_index.examples if i.kind == "message")
    assert len(rows.message_rows) == len(rows.message_labels) == messages
    assert len(rows.question_rows) == len(small_index.examples) - messages
    assert set(rows.question_labels) <= {"prohibited", "allowed", "informational", "not_covered"}
    for family, labels in rows.citation_labels.items():
        assert len(labels) == len(rows.citation_rows[family]) and 0 < sum(labels) < len(labels)
