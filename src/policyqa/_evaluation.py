"""Evaluation stage: gold datasets -> metrics, against baselines, with confidence intervals.

Gold citations are clause ids or verbatim quotes; a cited clause matches a quote when its text
contains the quote after both pass through `normalise_for_match`.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ._corpus import normalise_for_match
from ._errors import DatasetError, PolicyQAError
from ._models import Answer, Clause, EvalItem, Ruling

KS = (1, 3, 5, 10)
CONFIDENT = 0.6
"""A wrong verdict at or above this confidence counts as "confidently wrong"."""
BOOTSTRAP_SAMPLES = 1000

QUESTION_VERDICTS = {"prohibited", "allowed", "informational", "not_covered"}
MESSAGE_VERDICTS = {"violation", "no_violation"}


def load_dataset(paths: list[Path]) -> list[EvalItem]:
    """Read and validate JSONL gold items from files or folders (every *.jsonl inside).

    Raises:
        DatasetError: a file is missing, a line is invalid, a verdict does not fit its kind, or an id repeats.
    """
    items: list[EvalItem] = []
    for path in paths:
        files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
        if not files or not all(f.is_file() for f in files):
            raise DatasetError(f"no dataset at {path}")
        for file in files:
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    item = EvalItem.model_validate(json.loads(line))
                except (ValueError, ValidationError) as exc:
                    raise DatasetError(f"{file.name} line {number}: {exc}") from exc
                allowed = QUESTION_VERDICTS if item.kind == "question" else MESSAGE_VERDICTS
                if item.expected_verdict not in allowed:
                    raise DatasetError(f"{file.name} line {number}: verdict {item.expected_verdict!r} does not fit kind {item.kind!r}")
                items.append(item)
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise DatasetError(f"item id {item.id!r} appears twice")
        seen.add(item.id)
    return items


class GoldMatcher:
    """Decides which clauses satisfy an item's gold citations."""

    def __init__(self, clauses: list[Clause]):
        self._normalised = {c.clause_id: normalise_for_match(c.text) for c in clauses}

    def gold_clause_ids(self, item: EvalItem) -> list[set[str]]:
        """For each gold citation, the set of clause ids that would satisfy it."""
        out = []
        for gold in item.gold:
            if gold.clause:
                out.append({gold.clause})
            elif gold.quote:
                quote = normalise_for_match(gold.quote)
                out.append({cid for cid, text in self._normalised.items() if quote and quote in text})
        return out

    def matches(self, clause_id: str, item: EvalItem) -> bool:
        return any(clause_id in ids for ids in self.gold_clause_ids(item))


# --- Running the system and the baselines on the items -----------------------------------------------


@dataclass
class ItemResult:
    """Everything one item produced, for metrics and for failures.jsonl."""

    item: EvalItem
    verdict: str
    confidence: float
    cited: list[dict[str, Any]]  # {"clause_id", "quote", "text"} for each citation the system made
    rankings: dict[str, list[tuple[str, float]]]  # system name -> ranked (unit id, score)
    latency_ms: float
    section: str = ""
    baseline_verdict: str = ""
    error: str | None = None


@dataclass
class Unit:
    """A retrievable unit: a clause for PolicyQA, a chunk for the llama-index baseline."""

    unit_id: str
    text: str


class LlamaIndexBaseline:
    """llama-index's default pipeline over the same cleaned texts: SimpleDirectoryReader, the default
    SentenceSplitter (1024 tokens), the same embedding model, a VectorStoreIndex, top-k."""

    def __init__(self, corpus_dir: Path, model_path: str):
        from llama_index.core import Settings as LlamaSettings
        from llama_index.core import SimpleDirectoryReader, VectorStoreIndex
        from llama_index.core.llms import MockLLM
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding

        # The baseline only retrieves. `llm = None` would print "LLM is explicitly disabled. Using
        # MockLLM." into `policyqa eval`'s output (issue 12); this is the same MockLLM, set quietly.
        LlamaSettings.llm = MockLLM()
        LlamaSettings.embed_model = HuggingFaceEmbedding(model_name=model_path, device="cpu")
        documents = SimpleDirectoryReader(str(corpus_dir), required_exts=[".txt"]).load_data()
        self.nodes = LlamaSettings.node_parser.get_nodes_from_documents(documents)
        self._index = VectorStoreIndex(self.nodes)
        self.units = [Unit(n.node_id, n.get_content()) for n in self.nodes]

    def retrieve(self, text: str, k: int = 10) -> list[tuple[str, float]]:
        retriever = self._index.as_retriever(similarity_top_k=k)
        return [(n.node.node_id, float(n.score or 0.0)) for n in retriever.retrieve(text)]


def top1_stance_verdict(item: EvalItem, top: Clause | None) -> str:
    """The retrieval-only verdict baseline: read the verdict off the top clause's stance."""
    stance = top.stance if top else "context"
    if item.kind == "message":
        return "violation" if stance == "prohibits" else "no_violation"
    return {"prohibits": "prohibited", "exception": "allowed", "permits": "allowed", "penalty": "informational",
            "procedure": "informational", "definition": "informational"}.get(stance, "not_covered")


def run_items(items: list[EvalItem], *, index, decide: Callable[[EvalItem], Answer | Ruling],
              baseline: LlamaIndexBaseline | None, progress: Callable[[int, int], None] | None = None) -> list[ItemResult]:
    """Run the system (decide) and the retrieval baselines on every item."""
    results = []
    matcher = GoldMatcher(index.clauses)
    by_id = {c.clause_id: c for c in index.clauses}
    for done, item in enumerate(items, start=1):
        rankings: dict[str, list[tuple[str, float]]] = {}
        start = time.perf_counter()
        error = None
        try:
            outcome = decide(item)
            verdict, confidence = outcome.verdict, outcome.confidence
            citations = outcome.violations if isinstance(outcome, Ruling) else outcome.citations
            cited = [{"clause_id": c.clause_id, "quote": c.quote, "text": c.text} for c in citations]
        except PolicyQAError as exc:
            verdict, confidence, cited, error = "error", 0.0, [], str(exc)
        latency = (time.perf_counter() - start) * 1000
        hits = index.search(item.text, top_k=10)
        rankings["PolicyQA"] = [(h.clause.clause_id, h.fused_score) for h in hits]
        vector = index.encode([item.text])
        rankings["dense alone"] = [(index.clauses[p].clause_id, s) for p, s in index.dense_ranking(vector, 10)[0]]
        rankings["BM25 alone"] = [(index.clauses[p].clause_id, s) for p, s in index.lexical_ranking([item.text], 10)[0]]
        if baseline is not None:
            rankings["llama-index default"] = baseline.retrieve(item.text, 10)
        gold_ids = [cid for ids in matcher.gold_clause_ids(item) for cid in sorted(ids)]
        first = by_id.get(gold_ids[0]) if gold_ids else None
        section = f"{first.document_id} > {first.heading_path[0]}" if first and first.heading_path else (
            first.document_id if first else "(no gold)")
        results.append(ItemResult(item, verdict, confidence, cited, rankings, latency, section,
                                  top1_stance_verdict(item, hits[0].clause if hits else None), error))
        if progress:
            progress(done, len(items))
    return results


# --- Metrics ---------------------------------------------------------------------------------------


def _relevant_units(item: EvalItem, units: list[Unit], matcher: GoldMatcher, clause_text: dict[str, str]) -> set[str]:
    """Units that satisfy a gold citation: contain its quote, or contain its clause's text."""
    out = set()
    for gold in item.gold:
        needle = normalise_for_match(gold.quote) if gold.quote else normalise_for_match(clause_text.get(gold.clause or "", ""))
        if needle:
            out |= {u.unit_id for u in units if needle in u.text}
    return out


@dataclass
class Metric:
    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {"value": round(self.value, 4), "ci95": [round(self.low, 4), round(self.high, 4)], "n": self.n}


def bootstrap(values: list[Any], statistic: Callable[[list[Any]], float], *, seed: int = 13) -> Metric:
    """The statistic with a 95% percentile bootstrap interval over items (seeded, so reruns agree)."""
    if not values:
        return Metric(float("nan"), float("nan"), float("nan"), 0)
    rng = random.Random(seed)
    point = statistic(values)
    samples = sorted(statistic([values[rng.randrange(len(values))] for _ in values]) for _ in range(BOOTSTRAP_SAMPLES))
    return Metric(point, samples[int(0.025 * BOOTSTRAP_SAMPLES)], samples[int(0.975 * BOOTSTRAP_SAMPLES) - 1], len(values))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _ratio_of_sums(pairs: list[tuple[float, float]]) -> float:
    num, den = sum(a for a, _ in pairs), sum(b for _, b in pairs)
    return num / den if den else float("nan")


def retrieval_metrics(results: list[ItemResult], system: str, units: list[Unit], index) -> dict[str, Metric]:
    """hit@k, MRR@10 and nDCG@10 from ranx, over items that have gold citations."""
    from ranx import Qrels, Run, evaluate

    matcher = GoldMatcher(index.clauses)
    clause_text = {c.clause_id: c.text for c in index.clauses}
    normal_units = [Unit(u.unit_id, normalise_for_match(u.text)) for u in units]
    qrels, run = {}, {}
    for result in results:
        if not result.item.gold or system not in result.rankings:
            continue
        relevant = _relevant_units(result.item, normal_units, matcher, clause_text)
        if not relevant:
            continue
        qrels[result.item.id] = {u: 1 for u in relevant}
        ranking = result.rankings[system]
        run[result.item.id] = {u: float(len(ranking) - i) for i, (u, _) in enumerate(ranking)} or {"__none__": 0.0}
    if not qrels:
        return {}
    names = [f"hit_rate@{k}" for k in KS] + ["mrr@10", "ndcg@10"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per_query = evaluate(Qrels(qrels), Run(run), names, return_mean=False)
    out = {}
    for name in names:
        label = name.replace("hit_rate", "hit").replace("mrr@10", "MRR@10").replace("ndcg@10", "nDCG@10")
        out[label] = bootstrap([float(v) for v in per_query[name]], _mean)
    return out


def without_audit(item: EvalItem) -> EvalItem:
    """The item with only the gold its author wrote (the audit's additions dropped)."""
    return item.model_copy(update={"gold": [gold for gold in item.gold if not gold.audit]})


def citation_metrics(results: list[ItemResult], matcher: GoldMatcher, cited_of: Callable[[ItemResult], list[dict]]) -> dict[str, Metric]:
    """Precision, recall (items and gold citations), F1, quote exactness and mean cited length."""
    rows = []
    for result in results:
        cited = cited_of(result)
        if not result.item.gold:
            continue
        golds = matcher.gold_clause_ids(result.item) if cited and "clause_id" in cited[0] else []
        correct = sum(1 for c in cited if _cited_matches(c, result.item, matcher))
        satisfied = sum(1 for g in golds if any(c.get("clause_id") in g for c in cited)) if golds else sum(
            1 for gold in result.item.gold if any(_text_matches(c["text"], gold.quote or "") for c in cited))
        first3 = cited[:3]
        correct3 = sum(1 for c in first3 if _cited_matches(c, result.item, matcher))
        rows.append({"correct": correct, "cited": len(cited), "gold": len(result.item.gold), "satisfied": satisfied,
                     "any": 1.0 if correct else 0.0, "correct3": correct3, "cited3": len(first3),
                     "hit3": 1.0 if correct3 else 0.0,
                     "exact": [1.0 if c["quote"] in c["text"] else 0.0 for c in cited],
                     "lengths": [len(c["quote"]) for c in cited]})
    precision = bootstrap(rows, lambda rs: _ratio_of_sums([(r["correct"], r["cited"]) for r in rs]))
    item_recall = bootstrap(rows, lambda rs: _mean([r["any"] for r in rs]))
    gold_recall = bootstrap(rows, lambda rs: _ratio_of_sums([(r["satisfied"], r["gold"]) for r in rs]))

    def f1(rs):
        p = _ratio_of_sums([(r["correct"], r["cited"]) for r in rs])
        r = _mean([r["any"] for r in rs])
        return 2 * p * r / (p + r) if p + r and p == p else 0.0

    return {
        "citation hit@3": bootstrap(rows, lambda rs: _mean([r["hit3"] for r in rs])),
        "citation precision@3": bootstrap(rows, lambda rs: _ratio_of_sums([(r["correct3"], r["cited3"]) for r in rs])),
        "citation precision": precision,
        "citation recall (items)": item_recall,
        "citation recall (gold citations)": gold_recall,
        "citation F1": bootstrap(rows, f1),
        "quote exactness": bootstrap(rows, lambda rs: _mean([x for r in rs for x in r["exact"]])),
        "mean cited length (chars)": bootstrap(rows, lambda rs: _mean([x for r in rs for x in r["lengths"]])),
    }


def _text_matches(text: str, quote: str) -> bool:
    return bool(quote) and normalise_for_match(quote) in normalise_for_match(text)


def _cited_matches(cited: dict, item: EvalItem, matcher: GoldMatcher) -> bool:
    if "clause_id" in cited and matcher.matches(cited["clause_id"], item):
        return True
    return any(_text_matches(cited["text"], g.quote or "") for g in item.gold)


def verdict_metrics(results: list[ItemResult], verdict_of: Callable[[ItemResult], str],
                    confidence_of: Callable[[ItemResult], float] = lambda r: r.confidence) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, confusion, benign false positives, abstention and
    the rate of confidently wrong verdicts. A needs_review answer is never counted as right."""
    pairs = [(r.item.expected_verdict, verdict_of(r), confidence_of(r)) for r in results]
    labels = sorted({p[0] for p in pairs} | {p[1] for p in pairs})
    confusion = {want: {got: sum(1 for w, g, _ in pairs if w == want and g == got) for got in labels} for want in labels}
    per_class = {}
    for label in sorted({p[0] for p in pairs}):
        tp = sum(1 for w, g, _ in pairs if w == label and g == label)
        predicted = sum(1 for _, g, _ in pairs if g == label)
        actual = sum(1 for w, _, _ in pairs if w == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        per_class[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "support": actual,
                            "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0}
    benign = [g for w, g, _ in pairs if w == "no_violation"]
    uncovered = [g for w, g, _ in pairs if w == "not_covered"]
    return {
        "accuracy": bootstrap(pairs, lambda ps: _mean([1.0 if w == g else 0.0 for w, g, _ in ps])),
        "benign false-positive rate": bootstrap(benign, lambda gs: _mean([1.0 if g == "violation" else 0.0 for g in gs])),
        "abstention rate on not_covered items": bootstrap(uncovered, lambda gs: _mean([1.0 if g == "not_covered" else 0.0 for g in gs])),
        "needs_review rate": bootstrap(pairs, lambda ps: _mean([1.0 if g == "needs_review" else 0.0 for _, g, _ in ps])),
        "confidently wrong rate": bootstrap(pairs, lambda ps: _mean([
            1.0 if g != w and g not in {"needs_review", "not_covered"} and c >= CONFIDENT else 0.0 for w, g, c in ps])),
        "per_class": per_class,
        "confusion": confusion,
        "labels": labels,
    }


def calibration_metrics(results: list[ItemResult]) -> dict[str, Any]:
    """Expected calibration error and reliability bins of the confidence of committed verdicts
    (needs_review is not a committed verdict)."""
    from ._decision import expected_calibration_error, reliability_bins

    committed = [r for r in results if r.verdict not in {"needs_review", "error"}]
    confidences = [r.confidence for r in committed]
    correct = [r.verdict == r.item.expected_verdict for r in committed]
    return {"expected calibration error": bootstrap(list(zip(confidences, correct)), lambda pairs: expected_calibration_error(
                [c for c, _ in pairs], [k for _, k in pairs])),
            "bins": reliability_bins(confidences, correct), "committed": len(committed)}


def group_metrics(results: list[ItemResult], matcher: GoldMatcher,
                  search_hits: Callable[[list[ItemResult]], Metric] | None = None) -> dict[str, dict[str, Any]]:
    """Verdict and citation headline numbers per language and kind ("en message", "zh question", ...),
    and with `search_hits` the search's own hit@3 beside them (issue 8 compares the two)."""
    groups: dict[str, list[ItemResult]] = {}
    for result in results:
        for key in (result.item.lang, f"{result.item.lang} {result.item.kind}"):
            groups.setdefault(key, []).append(result)
    out = {}
    for key, members in sorted(groups.items()):
        verdicts = verdict_metrics(members, lambda r: r.verdict)
        citations = citation_metrics(members, matcher, lambda r: r.cited)
        out[key] = {"items": len(members), **{k: verdicts[k] for k in ("accuracy", "benign false-positive rate",
                                                                         "confidently wrong rate", "needs_review rate")},
                    **{k: citations[k] for k in ("citation hit@3", "citation precision@3", "quote exactness")}}
        if search_hits is not None:
            out[key]["search hit@3"] = search_hits(members)
    return out


def latency_metrics(results: list[ItemResult]) -> dict[str, float]:
    samples = sorted(r.latency_ms for r in results)
    if not samples:
        return {}
    return {"p50 ms": round(statistics.median(samples), 1),
            "p95 ms": round(samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))], 1)}


def per_section_hits(results: list[ItemResult], units: list[Unit], index, k: int = 5) -> dict[str, float]:
    """hit@k of the system per policy section (the section of each item's first gold clause)."""
    matcher = GoldMatcher(index.clauses)
    clause_text = {c.clause_id: c.text for c in index.clauses}
    normal = [Unit(u.unit_id, normalise_for_match(u.text)) for u in units]
    buckets: dict[str, list[float]] = {}
    for result in results:
        if not result.item.gold:
            continue
        relevant = _relevant_units(result.item, normal, matcher, clause_text)
        top = {u for u, _ in result.rankings["PolicyQA"][:k]}
        buckets.setdefault(result.section, []).append(1.0 if relevant & top else 0.0)
    return {section: round(_mean(v), 3) for section, v in sorted(buckets.items())}


def failures(results: list[ItemResult], matcher: GoldMatcher) -> list[dict[str, Any]]:
    """One row per item whose verdict or citations missed, with what was expected and returned."""
    out = []
    for r in results:
        cited_ok = not r.item.gold or any(_cited_matches(c, r.item, matcher) for c in r.cited)
        if r.verdict == r.item.expected_verdict and cited_ok:
            continue
        out.append({"id": r.item.id, "kind": r.item.kind, "text": r.item.text, "expected_verdict": r.item.expected_verdict,
                    "returned_verdict": r.verdict, "confidence": r.confidence, "citations_ok": cited_ok,
                    "expected_citations": [g.model_dump(exclude_none=True) for g in r.item.gold],
                    "returned_citations": [{"clause_id": c["clause_id"], "quote": c["quote"]} for c in r.cited],
                    "top_retrieved": [u for u, _ in r.rankings.get("PolicyQA", [])[:5]],
                    "note": r.item.note, "error": r.error})
    return out


@dataclass
class EvalReport:
    """All numbers of one evaluation run; written out by _report.write_report."""

    dataset: list[str]
    split: str | None
    engine: str
    items: int
    questions: int
    messages: int
    retrieval: dict[str, dict[str, Metric]] = field(default_factory=dict)
    citations: dict[str, dict[str, Metric]] = field(default_factory=dict)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    latency: dict[str, float] = field(default_factory=dict)
    sections: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    baseline_note: str = ""
    original_gold: dict[str, Metric] = field(default_factory=dict)  # PolicyQA's citations against the authors' gold alone
    audit_additions: int = 0

    def headline(self) -> dict[str, float]:
        """The numbers a quality floor is set on."""
        system = self.verdicts.get("PolicyQA", {})
        none = Metric(0, 0, 0, 0)
        return {
            "hit@5": self.retrieval.get("PolicyQA", {}).get("hit@5", none).value,
            "MRR@10": self.retrieval.get("PolicyQA", {}).get("MRR@10", none).value,
            "citation hit@3": self.citations.get("PolicyQA", {}).get("citation hit@3", none).value,
            "citation precision@3": self.citations.get("PolicyQA", {}).get("citation precision@3", none).value,
            "citation precision": self.citations.get("PolicyQA", {}).get("citation precision", none).value,
            "quote exactness": self.citations.get("PolicyQA", {}).get("quote exactness", Metric(1, 1, 1, 0)).value,
            "accuracy": system.get("accuracy", Metric(0, 0, 0, 0)).value,
            "benign false-positive rate": system.get("benign false-positive rate", Metric(1, 1, 1, 0)).value,
            "confidently wrong rate": system.get("confidently wrong rate", Metric(1, 1, 1, 0)).value,
            "expected calibration error": self.calibration.get("expected calibration error", Metric(1, 1, 1, 0)).value,
        }


def evaluate_items(items: list[EvalItem], *, index, decide: Callable[[EvalItem], Answer | Ruling], engine: str,
                   dataset: list[str], split: str | None, with_llama_baseline: bool = True,
                   progress: Callable[[str, int, int], None] | None = None) -> EvalReport:
    """Run everything and compute every metric for the system and its baselines."""
    from ._indexing import resolve_model_path

    report = progress or (lambda stage, done, total: None)
    baseline = None
    if with_llama_baseline:
        report("baseline", 0, 1)
        baseline = LlamaIndexBaseline(index.settings.corpus_dir, str(resolve_model_path(index.settings.embedding_model)))
        report("baseline", 1, 1)
    results = run_items(items, index=index, decide=decide, baseline=baseline,
                        progress=lambda done, total: report("items", done, total))
    matcher = GoldMatcher(index.clauses)
    clause_units = [Unit(c.clause_id, c.text) for c in index.clauses]
    by_id = {c.clause_id: c.text for c in index.clauses}
    out = EvalReport(dataset=dataset, split=split, engine=engine, items=len(items),
                     questions=sum(1 for i in items if i.kind == "question"),
                     messages=sum(1 for i in items if i.kind == "message"))
    systems = ["PolicyQA", "dense alone", "BM25 alone"] + (["llama-index default"] if baseline else [])

    def system_metrics(system: str) -> None:
        units = baseline.units if system == "llama-index default" else clause_units
        out.retrieval[system] = retrieval_metrics(results, system, units, index)
        if system == "PolicyQA":
            out.citations[system] = citation_metrics(results, matcher, lambda r: r.cited)
            return
        texts = {u.unit_id: u.text for u in units} if system == "llama-index default" else by_id

        def top3(r: ItemResult) -> list[dict]:
            chosen = [u for u, _ in r.rankings.get(system, [])[:3]]
            cited = [{"quote": texts[u], "text": texts[u]} for u in chosen]
            return [{**c, "clause_id": u} for c, u in zip(cited, chosen)] if system != "llama-index default" else cited

        out.citations[system] = citation_metrics(results, matcher, top3)

    def verdicts() -> None:
        out.verdicts["PolicyQA"] = verdict_metrics(results, lambda r: r.verdict)
        # The retrieval-only baseline always commits to its verdict: its confidence is 1.
        out.verdicts["top-1 stance (retrieval only)"] = verdict_metrics(results, lambda r: r.baseline_verdict, lambda r: 1.0)

    def rest() -> None:
        out.latency = latency_metrics(results)
        out.sections = per_section_hits(results, clause_units, index)
        out.calibration = calibration_metrics(results)
        out.failures = failures(results, matcher)

    def groups() -> None:
        out.groups = group_metrics(results, matcher, lambda members: retrieval_metrics(
            members, "PolicyQA", clause_units, index).get("hit@3", bootstrap([], _mean)))

    def original_gold() -> None:
        out.audit_additions = sum(1 for item in items for gold in item.gold if gold.audit)
        if out.audit_additions:
            authors = [replace(r, item=without_audit(r.item)) for r in results]
            out.original_gold = citation_metrics(authors, matcher, lambda r: r.cited)

    # The bootstrap intervals took 18 s after the last of the dev split's 549 items (a third of the run):
    # without this stage a progress bar sat silent at "549 of 549" (issue 12).
    steps = [lambda system=system: system_metrics(system) for system in systems] + [verdicts, rest, groups, original_gold]
    report("metrics", 0, len(steps))
    for done, step in enumerate(steps, start=1):
        step()
        report("metrics", done, len(steps))
    out.baseline_note = ("Baselines cite their top 3 retrieved units whole (a clause, or a 1024-token chunk for "
                         "llama-index); the verdict baseline reads the verdict off the top clause's stance.")
    return out
