"""Fit the offline engine's thresholds on the dev split ONLY, and write src/policyqa/calibration.json.

- judge: a logistic regression over retrieval features (scikit-learn) gives p(violation); the
  bands p >= hi (violation) and p <= lo (no violation) are chosen to maximise
  correct - 3 x confidently-wrong (needs_review scores 0), because a confident wrong ruling is the
  worst outcome and an honest "needs review" is not a bug;
- ask: thresholds are grid-searched for the same objective, with "not_covered" (the policies
  don't say) as the question's abstention;
- citations: the margin below the top score within which further clauses are cited, and the
  cross-document equivalence thresholds, are chosen for citation F0.5 (precision counts double).

Run: .venv/bin/python evals/calibrate.py   (never point it at the test split)
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from policyqa import open_index
from policyqa._evaluation import GoldMatcher, load_dataset
from policyqa._ruling import (CALIBRATION_FILE, FEATURE_NAMES, Calibration, message_segments, offline_engine,
                              question_verdict, strongest_segment)

DEV = Path(__file__).parent / "datasets" / "dev.jsonl"
WRONG_PENALTY = 3.0


def score(pairs: list[tuple[str, str]]) -> float:
    """correct - penalty x wrong, where an abstention (needs_review) is neither."""
    correct = sum(1 for got, want in pairs if got == want)
    wrong = sum(1 for got, want in pairs if got != want and got != "needs_review")
    return correct - WRONG_PENALTY * wrong


def main() -> int:
    index = open_index()
    engine = offline_engine(index)
    items = load_dataset([DEV])
    matcher = GoldMatcher(index.clauses)
    messages = [i for i in items if i.kind == "message"]
    questions = [i for i in items if i.kind == "question"]
    print(f"dev: {len(messages)} messages, {len(questions)} questions", file=sys.stderr)

    # judge: features of every segment; fit on the segment the default calibration finds strongest
    segment_evidence = [engine.evidence(message_segments(m.text)) for m in messages]
    base = Calibration()
    rows = [strongest_segment(ev, base)[0].features() for ev in segment_evidence]
    labels = [1 if m.expected_verdict == "violation" else 0 for m in messages]
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(np.array(rows), np.array(labels))
    cal = Calibration(judge_coef=[round(float(c), 4) for c in model.coef_[0]], judge_intercept=round(float(model.intercept_[0]), 4))
    best = None
    for hi, lo in itertools.product([0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9], [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]):
        if lo > hi:
            continue
        cal.judge_violation_p, cal.judge_clear_p = hi, lo
        pairs = []
        for ev, m in zip(segment_evidence, messages):
            chosen, p = strongest_segment(ev, cal)
            got = "violation" if p >= hi and chosen.prohibit_score > chosen.exception_score else (
                "no_violation" if p <= lo or chosen.exception_score >= chosen.prohibit_score else "needs_review")
            pairs.append((got, m.expected_verdict))
        candidate = (score(pairs), hi - lo, hi, lo)
        best = max(best or candidate, candidate)
    cal.judge_violation_p, cal.judge_clear_p = best[2], best[3]
    print(f"judge: features {FEATURE_NAMES} coef {cal.judge_coef} intercept {cal.judge_intercept}; "
          f"bands violation>={cal.judge_violation_p} clear<={cal.judge_clear_p} (score {best[0]})", file=sys.stderr)

    # ask thresholds
    question_evidence = [engine.evidence([q.text])[0] for q in questions]
    grid = itertools.product([0.4, 0.45, 0.5, 0.55, 0.6, 0.65], [0.45, 0.5, 0.55, 0.6, 1.01], [0.0, 0.05, 0.1, 0.15, 0.2],
                             [0.45, 0.5, 0.55, 0.6], [-0.1, 0.0, 0.05, 0.1, 0.15], [0.6, 0.65, 0.7, 0.75, 0.8, 1.01])
    best_ask = None
    for prohibit, allow, margin, info, benign_margin, permitted in grid:
        trial = Calibration(ask_prohibit=prohibit, ask_allow=allow, ask_allow_margin=margin, ask_info=info,
                            ask_margin=benign_margin, ask_permitted=permitted)
        pairs = [(question_verdict(q.text, ev, trial), q.expected_verdict) for q, ev in zip(questions, question_evidence)]
        # "not_covered" is the honest abstention for a question: a wrong one costs nothing extra,
        # a wrong committed verdict (prohibited / allowed / informational) costs as in judge.
        abstaining = [("needs_review" if got == "not_covered" and want != "not_covered" else got, want) for got, want in pairs]
        candidate = (score(abstaining), sum(1 for got, want in pairs if got == want), prohibit, allow, margin, info,
                     benign_margin, permitted)
        best_ask = max(best_ask or candidate, candidate)
    _, correct, cal.ask_prohibit, cal.ask_allow, cal.ask_allow_margin, cal.ask_info, cal.ask_margin, cal.ask_permitted = best_ask
    print(f"ask: prohibit>={cal.ask_prohibit} (margin over benign {cal.ask_margin}) allow>={cal.ask_allow} "
          f"allow-margin {cal.ask_allow_margin} info>={cal.ask_info} permitted-example>={cal.ask_permitted} ({correct}/{len(questions)} correct, "
          f"score {best_ask[0]})", file=sys.stderr)

    # citation margin: F1 of cited clauses among items whose gold is non-empty
    positives = [(m, strongest_segment(ev, cal)[0]) for m, ev in zip(messages, segment_evidence) if m.gold]
    positives += [(q, ev) for q, ev in zip(questions, question_evidence) if q.gold and q.expected_verdict == "prohibited"]
    # F1 of precision (cited clauses that match gold) and recall over gold citations (each gold
    # citation satisfied by some cited clause), so citing every document that states a rule counts.
    best_cite = None
    grid = itertools.product([0.02, 0.04, 0.06, 0.08, 0.1], [0.35, 0.4, 0.45], [0.6, 0.65, 0.7, 0.75, 0.8, 1.01], [0.3, 0.35, 0.4, 0.45])
    for margin, floor, equivalent, equivalent_floor in grid:
        cal.cite_margin, cal.cite_floor = margin, floor
        cal.equivalent_similarity, cal.equivalent_floor = equivalent, equivalent_floor
        tp = cited = gold_hit = gold_total = 0
        for item, ev in positives:
            chosen = engine._select_with(cal, ev.hits, {"prohibits"}, ev.prohibit_score)
            if chosen:
                chosen = chosen + engine.equivalents(chosen[0].clause, ev, {h.clause.document_id for h in chosen}, cal)
            ids = [h.clause.clause_id for h in chosen[:6]]
            cited += len(ids)
            tp += sum(1 for cid in ids if matcher.matches(cid, item))
            golds = matcher.gold_clause_ids(item)
            gold_total += len(golds)
            gold_hit += sum(1 for g in golds if g & set(ids))
        precision = tp / cited if cited else 0.0
        recall = gold_hit / gold_total if gold_total else 0.0
        # F0.5: precision weighs twice recall, because a wrong citation is worse than a missing one.
        f_half = 1.25 * precision * recall / (0.25 * precision + recall) if precision + recall else 0.0
        candidate = (round(f_half, 4), margin, floor, equivalent, equivalent_floor, precision, recall)
        best_cite = max(best_cite or candidate, candidate)
    _, cal.cite_margin, cal.cite_floor, cal.equivalent_similarity, cal.equivalent_floor, precision, recall = best_cite
    print(f"citations: margin {cal.cite_margin} floor {cal.cite_floor} equivalents >= {cal.equivalent_similarity} "
          f"(input >= {cal.equivalent_floor}) -> precision {precision:.3f} gold-citation recall {recall:.3f} F0.5 {best_cite[0]}",
          file=sys.stderr)

    CALIBRATION_FILE.write_text(json.dumps({"fitted_on": "evals/datasets/dev.jsonl", **asdict(cal)}, indent=2) + "\n")
    print(f"wrote {CALIBRATION_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
