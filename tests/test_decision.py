"""Decision stage, driven with fake evidence: thresholds, citation choice, calibration arithmetic,
and the models' arithmetic (the same numbers scikit-learn gives), all without loading a model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from policyqa import StaleIndexError
from policyqa._decision import (CALIBRATION_FILE, MODELS_RECIPE, Calibration, LinearModel, Models, expected_calibration_error,
                                lead_with_governing, message_verdict, question_verdict, reliability_bins,
                                mean_probabilities, select_citations, select_ranked_citations)
from policyqa._learning import fit_logistic

CAL = Calibration(violation_at=0.8, clear_at=0.3)


@pytest.mark.parametrize("p, verdict", [(0.95, "violation"), (0.8, "violation"), (0.79, "needs_review"),
                                        (0.31, "needs_review"), (0.3, "no_violation"), (0.01, "no_violation")])
def test_message_verdict_commits_only_outside_the_abstention_band(p, verdict):
    got, confidence = message_verdict(p, CAL)
    assert got == verdict
    assert confidence <= 0.5 if verdict == "needs_review" else confidence == pytest.approx(max(p, 1 - p))


def test_question_verdict_is_the_most_probable_with_its_probability():
    assert question_verdict({"prohibited": 0.2, "allowed": 0.7, "informational": 0.1}) == ("allowed", 0.7)


def test_citations_above_the_threshold_are_kept_best_first_up_to_the_limit():
    ranked = [(1, 0.3), (2, 0.9), (3, 0.6), (4, 0.55), (5, 0.1)]
    assert select_citations(ranked, cite_at=0.5, floor=0.2, limit=3) == [(2, 0.9), (3, 0.6), (4, 0.55)]
    assert select_citations(ranked, cite_at=0.5, floor=0.2, limit=1) == [(2, 0.9)]


def test_below_the_threshold_only_the_best_is_cited_and_below_the_floor_nothing():
    assert select_citations([(1, 0.3), (2, 0.25)], cite_at=0.5, floor=0.2, limit=3) == [(1, 0.3)]
    assert select_citations([(1, 0.1), (2, 0.05)], cite_at=0.5, floor=0.2, limit=3) == []
    assert select_citations([], cite_at=0.5, floor=0.2, limit=3) == []


def test_with_a_share_clauses_the_selector_cannot_tell_from_the_best_are_cited_too():
    ranked = [(1, 0.3), (2, 0.2), (3, 0.12), (4, 0.05)]
    # no clause reaches 0.5: without a share only the best is cited
    assert select_citations(ranked, cite_at=0.5, floor=0.1, limit=3) == [(1, 0.3)]
    # within half of the best (0.15) and above the floor: 0.2 is cited, 0.12 is not
    assert select_citations(ranked, cite_at=0.5, floor=0.1, limit=3, share=0.5) == [(1, 0.3), (2, 0.2)]
    # a smaller share reaches 0.12, but never below the floor
    assert select_citations(ranked, cite_at=0.5, floor=0.1, limit=3, share=0.1) == [(1, 0.3), (2, 0.2), (3, 0.12)]
    assert select_citations(ranked, cite_at=0.5, floor=0.1, limit=2, share=0.1) == [(1, 0.3), (2, 0.2)]
    assert select_citations([(1, 0.08), (2, 0.07)], cite_at=0.5, floor=0.1, limit=3, share=0.5) == []


def test_a_clause_only_the_whole_message_ranks_can_outrank_the_riskiest_sentences_best():
    sentence = {1: 0.5, 2: 0.3}  # "Middle schoolers!!": the bullying clauses
    whole = {3: 0.8, 1: 0.1}  # the whole message: supplying minors
    assert mean_probabilities(sentence, whole) == [(3, 0.4), (1, 0.3), (2, 0.15)]
    assert mean_probabilities({}, {}) == []
    assert mean_probabilities({4: 0.2, 2: 0.2}, {}) == [(2, 0.1), (4, 0.1)]  # ties by position


RANKED = dict(lead_at=0.1, further_at=0.3, floor=0.25, strong_at=0.4, limit=3)


def test_the_chinese_ranker_cites_the_best_candidate_and_those_reaching_the_further_threshold():
    candidates = [(0.2, 0.3, False), (0.6, 0.3, False), (0.35, 0.3, False), (0.25, 0.3, False)]
    assert select_ranked_citations(candidates, **RANKED) == [1, 2]  # best first; 0.25 is under 0.3
    assert select_ranked_citations([(0.15, 0.3, False), (0.12, 0.3, False)], **RANKED) == [0]  # the lead alone
    assert select_ranked_citations([(0.08, 0.3, False)], **RANKED) == []  # nothing reaches the lead threshold
    assert select_ranked_citations([], **RANKED) == []


def test_a_chinese_clause_whose_nearest_item_is_distant_counts_only_when_the_ranker_is_sure():
    # the best by probability rests on an item below the floor: it needs 0.4, so the other leads
    assert select_ranked_citations([(0.35, 0.2, False), (0.2, 0.3, False)], **RANKED) == [1]
    assert select_ranked_citations([(0.45, 0.2, False), (0.2, 0.3, False)], **RANKED) == [0]
    assert select_ranked_citations([(0.35, 0.2, False), (0.3, 0.18, False)], **RANKED) == []  # a vague text: nothing


def test_a_chinese_clause_of_a_scope_the_text_does_not_name_never_leads():
    candidates = [(0.7, 0.4, True), (0.15, 0.3, False), (0.05, 0.3, False)]  # a WeCom rule, then a Weixin one
    assert select_ranked_citations(candidates, **RANKED) == [1, 0]
    assert select_ranked_citations([(0.7, 0.4, True), (0.05, 0.3, False)], **RANKED) == [0]  # none governs


def test_a_clause_of_a_scope_the_text_does_not_name_never_leads():
    chosen = [(10, 0.6)]  # a WeCom rule, for a message that says nothing of WeCom
    ranked = [(10, 0.6), (20, 0.2), (30, 0.1)]
    assert lead_with_governing(chosen, ranked, {10}, floor=0.15, limit=3) == [(20, 0.2), (10, 0.6)]
    assert lead_with_governing(chosen, ranked, {10}, floor=0.25, limit=3) == [(10, 0.6)]  # none clears the floor
    assert lead_with_governing(chosen, ranked, set(), floor=0.15, limit=3) == chosen  # in scope: unchanged
    both = [(10, 0.6), (20, 0.5)]
    assert lead_with_governing(both, [*both, (30, 0.1)], {10}, floor=0.15, limit=3) == [(20, 0.5), (10, 0.6)]


def test_expected_calibration_error_is_zero_when_confidence_matches_accuracy():
    confidences = [0.75] * 4 + [0.25] * 4
    correct = [True, True, True, False, True, False, False, False]
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0)
    assert expected_calibration_error([0.9, 0.9], [False, False]) == pytest.approx(0.9)
    bins = reliability_bins(confidences, correct)
    assert [(b["count"], b["accuracy"]) for b in bins] == [(4, 0.25), (4, 0.75)]


def test_calibration_round_trips_through_its_file(tmp_path):
    cal = Calibration(violation_at=0.77, cite_at={"prohibit": 0.4, "info": 0.3, "permission": 0.9})
    cal.save(tmp_path / "c.json")
    assert Calibration.load(tmp_path / "c.json") == cal
    assert Calibration.load(tmp_path / "missing.json") == Calibration()


def test_the_committed_calibration_is_stored_by_name_and_was_fitted_on_dev():
    committed = json.loads(CALIBRATION_FILE.read_text())
    assert {"violation_at", "clear_at", "message_temperature", "cite_at", "models_fingerprint"} <= set(committed)
    assert committed["fitted_on"] == "evals/datasets/dev.jsonl"


# --- the models' arithmetic -------------------------------------------------------------------------


def _rows(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = [{"a": float(x), "b": float(y)} for x, y in rng.normal(size=(n, 2))]
    labels = [int(r["a"] + 0.5 * r["b"] > 0) for r in rows]
    vectors = rng.normal(size=(n, 4))
    return rows, labels, vectors


def test_a_binary_model_gives_the_log_odds_scikit_learn_gives():
    from sklearn.linear_model import LogisticRegression

    rows, labels, vectors = _rows(200)
    model = fit_logistic(rows, labels, c=1.0, vectors=list(vectors))
    matrix = np.array([[r["a"], r["b"]] for r in rows])
    design = np.hstack([(matrix - matrix.mean(0)) / matrix.std(0), vectors])
    reference = LogisticRegression(C=1.0, max_iter=3000, class_weight="balanced").fit(design, labels)
    assert np.allclose(model.logits(rows, vectors), reference.decision_function(design), atol=1e-6)


def test_a_multinomial_model_ranks_classes_like_scikit_learn():
    rows, _, _ = _rows(300, seed=1)
    labels = ["x" if r["a"] > 0.5 else "y" if r["b"] > 0 else "z" for r in rows]
    model = fit_logistic(rows, labels, c=1.0, balanced=False)
    assert model.classes == ("x", "y", "z")
    predicted = [model.classes[i] for i in model.logits(rows).argmax(axis=1)]
    assert np.mean([p == l for p, l in zip(predicted, labels)]) > 0.9


def test_fitting_is_deterministic_and_round_trips_by_feature_name():
    rows, labels, vectors = _rows(150, seed=2)
    first = fit_logistic(rows, labels, c=0.5, vectors=list(vectors), embedding_scale=0.5)
    second = fit_logistic(rows, labels, c=0.5, vectors=list(vectors), embedding_scale=0.5)
    assert np.array_equal(first.coef, second.coef)
    again = LinearModel.from_dict(json.loads(json.dumps(first.to_dict())))
    shuffled = [{"b": r["b"], "a": r["a"], "unused": 1.0} for r in rows]  # order and extra names do not matter
    assert np.allclose(again.logits(shuffled, vectors), first.logits(rows, vectors))


def test_a_model_that_reads_the_embedding_refuses_to_run_without_it():
    rows, labels, vectors = _rows(50)
    model = fit_logistic(rows, labels, c=1.0, vectors=list(vectors))
    with pytest.raises(ValueError, match="embedding"):
        model.logits(rows)


def test_models_of_another_recipe_make_the_index_stale():
    with pytest.raises(StaleIndexError, match="rebuild"):
        Models.load({"recipe": "policyqa-models-0"})
    with pytest.raises(StaleIndexError):
        Models.load(None)
    rows, labels, _ = _rows(40)
    model = fit_logistic(rows, labels, c=1.0).to_dict()
    loaded = Models.load({"recipe": MODELS_RECIPE, "message": model, "question": model, "citation": {"prohibit": model}})
    assert set(loaded.citation) == {"prohibit"}


def test_within_product_gives_each_governing_clause_its_share():
    from policyqa._decision import within_product

    assert within_product([(3, 0.08), (5, 0.02)]) == [(3, pytest.approx(0.8)), (5, pytest.approx(0.2))]
    assert within_product([(3, 0.0)]) == [(3, 0.0)]  # nothing to share: unchanged, so nothing is cited
    assert within_product([]) == []


def test_the_tree_selector_scores_as_scikit_learn_does_and_round_trips():
    """fit_trees flattens scikit-learn's ensemble; TreeModel walks it with numpy alone (missing
    features read as 0, as for the linear models) and survives models.json."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from policyqa._decision import TreeModel, citation_model
    from policyqa._learning import FitOptions, fit_trees

    rng = np.random.default_rng(0)
    rows = [{"fused": float(a), "wording": float(b), "example": float(c)} for a, b, c in rng.normal(size=(600, 3))]
    labels = [int(r["fused"] + 0.5 * r["wording"] ** 2 > 0.6) for r in rows]
    model = fit_trees(rows, labels, FitOptions())
    reference = HistGradientBoostingClassifier(learning_rate=0.1, max_iter=100, max_leaf_nodes=15, early_stopping=False,
                                               random_state=0).fit([[r["example"], r["fused"], r["wording"]] for r in rows], labels)
    probe = [{"fused": float(a), "wording": float(b), "example": float(c)} for a, b, c in rng.normal(size=(50, 3))]
    expected = reference.decision_function([[r["example"], r["fused"], r["wording"]] for r in probe])
    assert np.allclose(model.logits(probe), expected)
    again = citation_model(json.loads(json.dumps(model.to_dict())))
    assert isinstance(again, TreeModel) and np.allclose(again.logits(probe), expected)
    assert np.allclose(model.logits([{"fused": 0.3}]), model.logits([{"fused": 0.3, "wording": 0.0, "example": 0.0}]))
