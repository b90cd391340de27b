"""Calibrate the offline engine on the dev split ONLY and write src/policyqa/calibration.json.

The models themselves are fitted on the training data at index time (`policyqa index`). What is
fitted here, on dev, is how far to trust them:
- temperatures: Platt scaling of the message model's log-odds, temperature scaling of the question
  model's softmax, so a stated confidence means what it says (the eval report shows the
  reliability plot and the expected calibration error);
- abstention: the violation and no-violation thresholds that get the most dev messages right while
  the confidently-wrong rate and the benign false-positive rate stay at or under TARGET_ERROR_RATE;
  between them a message goes to a person ("needs_review");
- citations: per verdict family, the selector probability at which a further clause is cited: right
  citations minus WRONG_CITATION_COST x wrong ones, with cited clauses at or above
  CITATION_PRECISION (the floor below which nothing is cited is fixed: FLOORS).

It calls the engine's own assess_*/decide_* functions, so the rule it tunes is the rule that runs.
Run: .venv/bin/python evals/calibrate.py   (never point it at the test split)
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np

from policyqa import open_index
from policyqa._decision import CALIBRATION_FILE, Calibration, message_verdict, softmax
from policyqa._evaluation import CONFIDENT, GoldMatcher, load_dataset
from policyqa._ruling import VERDICT_FAMILY, models_fingerprint, offline_engine

DEV = Path(__file__).parent / "datasets" / "dev.jsonl"
TARGET_ERROR_RATE = 0.04
"""Ceiling on dev for messages ruled wrong at confidence >= 0.6, and for benign messages ruled
violations. The bar on test is 0.05; the margin absorbs some of the dev-test difference."""
FLOORS = {"prohibit": 0.1, "info": 0.05, "permission": 0.05}
"""Below its floor a verdict cites nothing and becomes needs_review / not_covered. Fixed, not tuned:
on dev the best candidate's probability hardly separates right from wrong citations (informational
wrong ones ranged 0.01-0.89), and tuning the floor swung between runs, once to 0.3, where it sent 19
of 105 true violations to review to avoid 8 debatable citations. At 0.1, 1 of 99 predicted
violations goes to review."""
SHARES = (0.0, 0.3, 0.5, 0.7)
"""Candidate shares for the relative citation rule (select_citations): a further clause is cited when
its probability is at least this share of the leading clause's; 0 turns the rule off. Where the
selector spreads its belief over two or three clauses, none of them reaches the absolute threshold.
Fitted on dev at 882c7fc (this script prints it): prohibit within 0.5 (146 of 162 predicted
violations with a right clause, precision 0.751), informational within 0.3 (49 of 51, 0.760),
permission off; `policyqa eval --split dev` then gave English citation hit@3 0.917, against 0.867
with the rule off (4f8bc21's calibration)."""
CITATION_PRECISION = 0.75
"""Floor on the share of cited clauses that gold accepts (the bar on test is also 0.75)."""
WRONG_CITATION_COST = 1.5
"""An item citing only clauses gold does not list costs 1.5 items cited right. Not more: on dev about
half of those were the specific list item of an umbrella that gold names ("9.1.12 Invoices;" under
9.1), or a clause gold missed ("Trafficking in non-reproduced organs" for a kidney sale), so a
higher cost sent clear violations to review (a floor of 0.3 cost 19 of 105)."""


def platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(temperature, bias) so that sigmoid(logit / T + b) is calibrated on these items."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=100.0).fit(logits.reshape(-1, 1), labels)
    slope = float(model.coef_[0, 0])
    return (1.0 / slope if slope > 1e-3 else 1000.0), float(model.intercept_[0])


def temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The softmax temperature minimising the negative log-likelihood of the labels."""
    best = (math.inf, 1.0)
    for t in np.exp(np.linspace(math.log(0.2), math.log(10.0), 200)):
        p = softmax(logits / t)[np.arange(len(labels)), labels]
        best = min(best, (float(-np.log(np.clip(p, 1e-12, 1)).sum()), float(t)))
    return best[1]


def thresholds(p: np.ndarray, violating: np.ndarray) -> tuple[float, float]:
    """(violation_at, clear_at) with the most right verdicts on dev under the error ceilings;
    among equals, the wider band (more sent to review)."""
    best = None
    for violation_at in np.round(np.arange(0.50, 0.99, 0.01), 2):
        for clear_at in np.round(np.arange(0.01, 0.51, 0.01), 2):
            if clear_at > violation_at:
                continue
            trial = Calibration(violation_at=float(violation_at), clear_at=float(clear_at))
            verdicts = [message_verdict(float(x), trial) for x in p]
            wrong_confident = sum(1 for (v, c), y in zip(verdicts, violating)
                                  if v != "needs_review" and (v == "violation") != bool(y) and c >= CONFIDENT)
            benign = [v for (v, _), y in zip(verdicts, violating) if not y]
            false_positive = sum(1 for v in benign if v == "violation") / max(len(benign), 1)
            if wrong_confident / len(p) > TARGET_ERROR_RATE or false_positive > TARGET_ERROR_RATE:
                continue
            right = sum(1 for (v, _), y in zip(verdicts, violating) if v != "needs_review" and (v == "violation") == bool(y))
            candidate = (right, violation_at - clear_at, float(violation_at), float(clear_at))
            best = max(best or candidate, candidate)
    return (best[2], best[3]) if best else (0.99, 0.01)


def calibrate_chinese(engine, cal: Calibration) -> None:
    """The Chinese channel's own temperatures and abstention band, on the Chinese dev items (its
    citations come from the ranker fitted at index time, at the thresholds evals/compare_zh_citations.py
    compares, and from the vote rule: _ruling.ZH_RANK_*, _chinese.CITE_SHARE, _ruling.ZH_CITE_FLOOR)."""
    if engine.index.chinese is None or engine.models.chinese_message is None:
        print("no Chinese channel in this index: Chinese calibration left at defaults", file=sys.stderr)
        return
    items = [i for i in load_dataset([DEV]) if i.lang == "zh"]
    messages = [i for i in items if i.kind == "message"]
    questions = [i for i in items if i.kind == "question"]
    logits = np.asarray([float(engine.assess_chinese(m.text, "message").logits[0]) for m in messages])
    violating = np.asarray([m.expected_verdict == "violation" for m in messages], dtype=float)
    cal.zh_message_temperature, cal.zh_message_bias = platt(logits, violating)
    zh = cal.for_chinese()
    p = np.asarray([zh.violation_probability(z) for z in logits])
    cal.zh_violation_at, cal.zh_clear_at = thresholds(p, violating)
    classes = list(engine.models.chinese_question.classes)
    q_logits = np.asarray([engine.assess_chinese(q.text, "question").logits for q in questions])
    q_labels = np.asarray([classes.index(q.expected_verdict) for q in questions])
    cal.zh_question_temperature = temperature(q_logits, q_labels)
    print(f"Chinese dev: {len(messages)} messages (T={cal.zh_message_temperature:.3f} b={cal.zh_message_bias:.3f}; "
          f"violation >= {cal.zh_violation_at}, no violation <= {cal.zh_clear_at}), {len(questions)} questions "
          f"(T={cal.zh_question_temperature:.3f})", file=sys.stderr)


def main() -> int:
    index = open_index()
    engine = offline_engine(index)
    items = [i for i in load_dataset([DEV]) if i.lang == "en"]
    matcher = GoldMatcher(index.clauses)
    messages = [i for i in items if i.kind == "message"]
    questions = [i for i in items if i.kind == "question"]
    print(f"dev: {len(messages)} messages, {len(questions)} questions", file=sys.stderr)
    cal = Calibration(fitted_on="evals/datasets/dev.jsonl", models_fingerprint=models_fingerprint(index))

    # messages: Platt scaling, then the abstention band
    assessed = [engine.assess_message(m.text) for m in messages]
    logits = np.asarray([a.logit for a in assessed])
    violating = np.asarray([m.expected_verdict == "violation" for m in messages], dtype=float)
    cal.message_temperature, cal.message_bias = platt(logits, violating)
    p = np.asarray([cal.violation_probability(z) for z in logits])
    cal.violation_at, cal.clear_at = thresholds(p, violating)
    print(f"messages: T={cal.message_temperature:.3f} b={cal.message_bias:.3f}; violation >= {cal.violation_at}, "
          f"no violation <= {cal.clear_at}", file=sys.stderr)

    # questions: temperature scaling
    asked = [engine.assess_question(q.text) for q in questions]
    classes = list(engine.models.question.classes)
    q_logits = np.asarray([a.logits for a in asked])
    q_labels = np.asarray([classes.index(q.expected_verdict) for q in questions])
    cal.question_temperature = temperature(q_logits, q_labels)
    print(f"questions: T={cal.question_temperature:.3f}", file=sys.stderr)

    # citations: per family, over the dev items the calibrated models give that family's verdict
    # (so a false positive that cites anything counts against the thresholds)
    cases: dict[str, list[tuple[list[tuple[int, float]], object, object]]] = {}
    for m, a in zip(messages, assessed):
        if message_verdict(cal.violation_probability(a.logit), cal)[0] == "violation":
            cases.setdefault("prohibit", []).append((engine.violation_probabilities(a)[0], m, a.segment))
    for q, a in zip(questions, asked):
        predicted = classes[int(np.argmax(cal.question_probabilities(a.logits)))]
        family = VERDICT_FAMILY.get(predicted)
        if family:
            cases.setdefault(family, []).append((engine.citation_probabilities(family, a.evidence), q, a.evidence))
    for family, rows in sorted(cases.items()):
        best = None
        floors = [FLOORS[family]]
        for cite_at, floor, share in itertools.product(np.round(np.arange(0.1, 0.95, 0.05), 2), floors, SHARES):
            if floor > cite_at:
                continue
            cited = correct = hit = wrong = 0
            for probabilities, item, evidence in rows:
                trial = Calibration(cite_at={family: float(cite_at)}, cite_floor={family: float(floor)},
                                    cite_share={family: float(share)}, max_citations=cal.max_citations)
                chosen = engine.choose(family, probabilities, evidence, trial)
                ids = [index.clauses[pos].clause_id for pos, _ in chosen]
                good = sum(matcher.matches(cid, item) for cid in ids)
                cited, correct = cited + len(ids), correct + good
                hit += bool(good)
                wrong += bool(ids) and not good
            precision = correct / cited if cited else 0.0
            # right citations minus wrong ones, with the cited clauses at or above the precision floor;
            # where no threshold reaches the floor, F0.5 of precision and items with a right citation
            recall = hit / max(len(rows), 1)
            f_half = 1.25 * precision * recall / (0.25 * precision + recall) if precision + recall else 0.0
            key = hit - WRONG_CITATION_COST * wrong if precision >= CITATION_PRECISION else f_half
            # ties go to the higher precision, then to no share rule, then to the higher threshold
            candidate = (precision >= CITATION_PRECISION, key, round(precision, 4), -float(share), float(cite_at),
                         float(floor), hit)
            best = max(best or candidate, candidate)
        _, _, precision, share, cite_at, cal.cite_floor[family], hit = best
        cal.cite_at[family], cal.cite_share[family] = cite_at, -share
        print(f"citations ({family}, {len(rows)} items): cite at >= {cal.cite_at[family]}, or within "
              f"{cal.cite_share[family]} of the lead's p; floor {cal.cite_floor[family]}"
              f" -> precision {precision:.3f}, items with a right citation {hit}", file=sys.stderr)

    calibrate_chinese(engine, cal)
    cal.save(CALIBRATION_FILE)
    print(f"wrote {CALIBRATION_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
