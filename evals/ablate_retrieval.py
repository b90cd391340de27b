"""Retrieval ablations on the dev split: the fusion choices PolicyQA makes, each switched off.

Prints hit@1, hit@5 and MRR@10 (ranx) over dev items with gold, for the shipped settings and for
variants that change one query-time setting. Choices that shape the index (phrase windows, example
vectors) need a rebuild per variant and are not covered here.

Run: .venv/bin/python evals/ablate_retrieval.py
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from ranx import Qrels, Run, evaluate

from policyqa import load_dataset, open_index
from policyqa._evaluation import GoldMatcher

DEV = Path(__file__).parent / "datasets" / "dev.jsonl"
VARIANTS = {
    "shipped (dense 2 : BM25 1, scope 0.9, glossary)": {},
    "dense 1 : BM25 1": {"dense_weight": 1.0},
    "dense only": {"lexical_weight": 0.0},
    "BM25 only": {"dense_weight": 0.0},
    "no scope prior": {"out_of_scope_weight": 1.0},
    "no glossary expansion": {"expand_queries": False},
}


def main() -> int:
    index = open_index()
    items = [i for i in load_dataset([DEV]) if i.gold]
    matcher = GoldMatcher(index.clauses)
    qrels = Qrels({i.id: {cid: 1 for ids in matcher.gold_clause_ids(i) for cid in ids} for i in items})
    print(f"{len(items)} dev items with gold\n\n{'variant':<50}{'hit@1':>8}{'hit@5':>8}{'MRR@10':>8}")
    for name, changes in VARIANTS.items():
        variant = index.with_settings(**changes)
        hits = variant.search_many([i.text for i in items], top_k=10)
        run = Run({i.id: {h.clause.clause_id: float(11 - h.rank) for h in hs} for i, hs in zip(items, hits)})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = evaluate(qrels, run, ["hit_rate@1", "hit_rate@5", "mrr@10"])
        print(f"{name:<50}{scores['hit_rate@1']:>8.3f}{scores['hit_rate@5']:>8.3f}{scores['mrr@10']:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
