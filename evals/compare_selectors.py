"""Compare citation selectors on the English dev items (dev only: never point it at test).

For each verdict family, fits the logistic selector and gradient-boosted trees on the cross-fitted
training rows (`_learning.training_rows`, as the index build does), then, for every English dev item
with gold and the family its expected verdict calls for, cites the candidates at or above a
threshold (at most three; the best alone when none reaches it but it clears 0.1) and prints, per
threshold, the share of items with a gold clause cited and the precision of what was cited.
The verdict family is given, so this isolates the selector from the verdict classifiers.

Run: .venv/bin/python evals/compare_selectors.py   (about two minutes on two cores)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from policyqa import open_index
from policyqa._chinese import language_of
from policyqa._decision import sigmoid
from policyqa._evaluation import GoldMatcher, load_dataset
from policyqa._learning import FitOptions, fit_logistic, fit_trees, training_rows
from policyqa._ruling import VERDICT_FAMILY, offline_engine

DEV = Path(__file__).parent / "datasets" / "dev.jsonl"
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
FAMILY = {"violation": "prohibit", **VERDICT_FAMILY}


def main() -> None:
    index = open_index()
    engine = offline_engine(index)
    matcher = GoldMatcher(index.clauses)
    rows = training_rows(index, engine.source)
    options = FitOptions()
    cases: dict[str, list] = {}
    for item in load_dataset([DEV]):
        family = FAMILY.get(item.expected_verdict)
        if not item.gold or family is None or language_of(item.text) != "en":
            continue
        evidence = engine.assess_message(item.text).segment if item.kind == "message" else engine.assess_question(item.text).evidence
        positions = engine.source.candidates(evidence)
        cases.setdefault(family, []).append((item, positions, engine.source.candidate_features(evidence, positions)))
    for family, items in sorted(cases.items()):
        selectors = {"logistic": fit_logistic(rows.citation_rows[family], rows.citation_labels[family],
                                              c=options.citation_c, balanced=False),
                     "trees": fit_trees(rows.citation_rows[family], rows.citation_labels[family], options)}
        print(f"{family} ({len(items)} dev items): threshold -> items with a gold clause cited / precision")
        for name, model in selectors.items():
            cells = []
            for threshold in THRESHOLDS:
                hit = correct = cited = 0
                for item, positions, features in items:
                    p = sigmoid(model.logits(features))
                    order = np.argsort(-p)
                    chosen = [positions[j] for j in order[:3] if p[j] >= threshold] or (
                        [positions[order[0]]] if p[order[0]] >= 0.1 else [])
                    good = [matcher.matches(index.clauses[pos].clause_id, item) for pos in chosen]
                    hit, correct, cited = hit + any(good), correct + sum(good), cited + len(chosen)
                cells.append(f"{threshold}: {hit / len(items):.3f}/{correct / max(cited, 1):.3f}")
            print(f"  {name:8} " + "  ".join(cells))


if __name__ == "__main__":
    main()
