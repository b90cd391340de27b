"""Compare the ways a Chinese ruling chooses its clauses, on the Chinese dev items (dev only: never
point it at test).

Runs the offline engine end to end on every Chinese dev item (verdicts included: a violation with
nothing to cite goes to review, so the choice moves verdicts too) under the vote rule (the ranker
switched off) and under the citation ranker the index fitted, at a grid of its thresholds
(_ruling.ZH_RANK_LEAD_AT, ZH_RANK_FURTHER_AT, ZH_RANK_STRONG_AT, the similarity floor ZH_CITE_FLOOR,
and ZH_RANK_UNSURE_AT, below which the glossary's clauses are cited instead), and prints per
setting: verdict accuracy, the share of items with gold that cite a gold clause among their first
three, the precision of what was cited, benign messages ruled violations, and what two of issue 9's
examples get.

Run: .venv/bin/python evals/compare_zh_citations.py   (about a minute on two cores)
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from policyqa import open_index
from policyqa import _ruling as ruling
from policyqa._evaluation import GoldMatcher, load_dataset

DEV = Path(__file__).parent / "datasets" / "dev.jsonl"
SETTINGS = {  # name -> (lead, further, strong, floor, unsure); None: the vote rule
    "vote rule": None,
    "ranker 0.1/0.3, 0.4 below 0.25": (0.1, 0.3, 0.4, 0.25, 0.2),
    "ranker 0.2/0.3, 0.4 below 0.25": (0.2, 0.3, 0.4, 0.25, 0.2),
    "ranker 0.3/0.3, 0.4 below 0.25": (0.3, 0.3, 0.4, 0.25, 0.2),
    "ranker 0.1/0.5, 0.4 below 0.25": (0.1, 0.5, 0.4, 0.25, 0.2),
    "ranker 0.1/0.3, 0.5 below 0.25": (0.1, 0.3, 0.5, 0.25, 0.2),
    "ranker 0.1/0.3, 0.6 below 0.25": (0.1, 0.3, 0.6, 0.25, 0.2),
    "ranker 0.1/0.3, no floor": (0.1, 0.3, 0.0, 0.0, 0.2),  # the floor is shared: the vote rule's goes too
    "ranker, never the glossary first": (0.1, 0.3, 0.4, 0.25, 0.0),
    "ranker, glossary first below 0.3": (0.1, 0.3, 0.4, 0.25, 0.3),
    "ranker, glossary first below 0.5": (0.1, 0.3, 0.4, 0.25, 0.5),
}
EXAMPLES = ("新到一批货，同城配送，要的私聊", "出售假身份证，加我微信")


def main() -> None:
    index = open_index()
    engine = ruling.offline_engine(index)
    matcher = GoldMatcher(index.clauses)
    items = [item for item in load_dataset([DEV]) if item.lang == "zh"]
    ranker = dict(engine.models.chinese_citation)
    print(f"{len(items)} Chinese dev items, {sum(bool(i.gold) for i in items)} with gold")
    print(f"{'setting':34s} accuracy  cited right  precision  benign flagged  examples")
    for name, setting in SETTINGS.items():
        engine.models = replace(engine.models, chinese_citation={} if setting is None else ranker)
        if setting is not None:
            (ruling.ZH_RANK_LEAD_AT, ruling.ZH_RANK_FURTHER_AT, ruling.ZH_RANK_STRONG_AT, ruling.ZH_CITE_FLOOR,
             ruling.ZH_RANK_UNSURE_AT) = setting
        right = with_gold = hits = good = cited = flagged = 0
        for item in items:
            out = engine.judge(item.text) if item.kind == "message" else engine.ask(item.text)
            right += out.verdict == item.expected_verdict
            flagged += item.expected_verdict == "no_violation" and out.verdict == "violation"
            if item.gold:
                clauses = [c.clause_id for c in (out.violations if item.kind == "message" else out.citations)[:3]]
                matched = [matcher.matches(clause_id, item) for clause_id in clauses]
                with_gold, hits, good, cited = with_gold + 1, hits + any(matched), good + sum(matched), cited + len(clauses)
        examples = "; ".join(f"{r.verdict} {[v.clause_id.split('/', 1)[1] for v in r.violations]}"
                             for r in (engine.judge(text) for text in EXAMPLES))
        print(f"{name:34s} {right / len(items):8.3f}  {hits / with_gold:11.3f}  {good / max(cited, 1):9.3f}  "
              f"{flagged:14d}  {examples}")


if __name__ == "__main__":
    main()
