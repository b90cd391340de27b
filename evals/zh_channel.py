"""How Chinese text is matched: the comparison that chose the Chinese channel (_chinese), on the
Chinese dev items only.

Each variant turns the Chinese training items and the dev items into vectors, then runs the same
pipeline the engine runs: cross-fitted nearest-item features -> logistic models -> verdicts; clause
votes of the nearest items -> citations. Printed per variant: message AUC, message accuracy and
benign false positives at p >= 0.5, question accuracy, and citation hit@5 of dev items with gold.

Variants: character n-grams (1-2, 1-3, 2-4), jieba words (1-2-grams of words), and the packaged
MiniLM's sentence vectors (with and without the query encoder the index tuned on English). It also
prints how much of the Chinese text MiniLM's tokenizer maps to [UNK].

Run: .venv/bin/python evals/zh_channel.py   (needs a built index: `policyqa index`)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from policyqa import open_index
from policyqa._chinese import ChineseBank, ChineseEvidence, message_parts, ngrams, normalise
from policyqa._evaluation import GoldMatcher, load_dataset
from policyqa._indexing import FOLDS
from policyqa._learning import fit_logistic

DEV = Path(__file__).parent / "datasets" / "dev.jsonl"


def char_vectors(sizes):
    from sklearn.feature_extraction.text import TfidfVectorizer

    def make(train: list[str], other: list[str]):
        vec = TfidfVectorizer(analyzer=lambda t: list(ngrams(t, sizes).elements()), sublinear_tf=True)
        vec.fit([normalise(t) for t in train])
        return vec.transform([normalise(t) for t in train]), vec.transform([normalise(t) for t in other])
    return make


def word_vectors(train: list[str], other: list[str]):
    import jieba
    from sklearn.feature_extraction.text import TfidfVectorizer

    jieba.setLogLevel(60)
    cut = lambda t: " ".join(w for w in jieba.lcut(normalise(t)) if w.strip())  # noqa: E731
    vec = TfidfVectorizer(analyzer="word", token_pattern=r"[^\W_]+", ngram_range=(1, 2), sublinear_tf=True)
    vec.fit([cut(t) for t in train])
    return vec.transform([cut(t) for t in train]), vec.transform([cut(t) for t in other])


def dense_vectors(embedder):
    def make(train: list[str], other: list[str]):
        return embedder.encode(train, batch_size=64), embedder.encode(other, batch_size=64)
    return make


def similarities(a, b) -> np.ndarray:
    product = a @ b.T
    return product.toarray() if hasattr(product, "toarray") else np.asarray(product)


def evaluate_variant(name: str, make, bank: ChineseBank, dev, matcher: GoldMatcher, index) -> None:
    train_texts = [i.text for i in bank.items]
    dev_parts = [message_parts(d.text) if d.kind == "message" else [] for d in dev]
    other = [d.text for d in dev] + [p for parts in dev_parts for p in parts]
    train_parts = [message_parts(i.text) if i.kind == "message" else [] for i in bank.items]
    other += [p for parts in train_parts for p in parts]
    train_vectors, other_vectors = make(train_texts, other)
    sims = similarities(other_vectors, train_vectors)
    train_sims = similarities(train_vectors, train_vectors)
    same_fold = bank.folds[:, None] == bank.folds[None, :]
    train_sims[same_fold] = -1.0

    cursor = len(dev)
    dev_part_sims = []
    for parts in dev_parts:
        dev_part_sims.append(sims[cursor: cursor + len(parts)])
        cursor += len(parts)
    train_part_sims = []
    for n, parts in enumerate(train_parts):
        block = sims[cursor: cursor + len(parts)].copy()
        block[:, bank.folds == bank.folds[n]] = -1.0
        train_part_sims.append(block)
        cursor += len(parts)

    def features(text, row, part_rows, kind):
        ev = ChineseEvidence(text, row)
        if kind == "question":
            return bank.features(ev), ev
        parts = [ChineseEvidence("", r) for r in part_rows]
        return bank.message_features(ev, parts), bank.riskiest_sentence(ev, parts)

    train = [features(i.text, train_sims[n], train_part_sims[n], i.kind) for n, i in enumerate(bank.items)]
    tested = [features(d.text, sims[n], dev_part_sims[n], d.kind) for n, d in enumerate(dev)]
    is_msg = [i.kind == "message" for i in bank.items]
    message = fit_logistic([f for (f, _), m in zip(train, is_msg) if m],
                           [int(i.label == "violation") for i in bank.items if i.kind == "message"], c=1.0)
    question = fit_logistic([f for (f, _), m in zip(train, is_msg) if not m],
                            [i.label for i in bank.items if i.kind == "question"], c=1.0, balanced=False)
    msgs = [(d, t) for d, t in zip(dev, tested) if d.kind == "message"]
    z = message.logits([f for _, (f, _) in msgs])
    y = np.asarray([d.expected_verdict == "violation" for d, _ in msgs])
    from sklearn.metrics import roc_auc_score

    predicted = z >= 0
    qs = [(d, t) for d, t in zip(dev, tested) if d.kind == "question"]
    q_pred = [question.classes[int(np.argmax(r))] for r in question.logits([f for _, (f, _) in qs])]
    q_acc = np.mean([p == d.expected_verdict for p, (d, _) in zip(q_pred, qs)])
    family = {"violation": "prohibit", "prohibited": "prohibit", "informational": "info", "allowed": "permission"}
    hits = []
    for d, (_, ev) in zip(dev, tested):
        if d.gold and d.expected_verdict in family:
            top = [index.clauses[pos].clause_id for pos, _, _ in bank.clause_votes(ev, family[d.expected_verdict])[:5]]
            hits.append(any(matcher.matches(cid, d) for cid in top))
    print(f"{name:28s} msg AUC {roc_auc_score(y, z):.3f}  acc {np.mean(predicted == y):.3f}  "
          f"FP {np.mean(predicted[~y]):.3f}  | question acc {q_acc:.3f} (n={len(qs)})  | cite hit@5 {np.mean(hits):.3f} "
          f"(n={len(hits)})", flush=True)


def main() -> int:
    index = open_index()
    bank = index.chinese
    if bank is None:
        print("this index has no Chinese channel", file=sys.stderr)
        return 1
    dev = [i for i in load_dataset([DEV]) if i.lang == "zh"]
    matcher = GoldMatcher(index.clauses)
    tokenizer = getattr(getattr(index.embedder, "_model", None), "tokenizer", None)
    if tokenizer is not None:
        ids = [tid for d in dev for tid in tokenizer(d.text, add_special_tokens=False)["input_ids"]]
        unk = tokenizer.unk_token_id
        print(f"MiniLM tokenizer on Chinese dev text: {np.mean([t == unk for t in ids]):.1%} of tokens are [UNK]")
    print(f"Chinese dev: {len(dev)} items; training bank: {len(bank.items)} items, {FOLDS} folds")
    evidence = bank.gather([d.text for d in dev])
    known = np.asarray([ev.known for ev in evidence])
    nearest = np.asarray([ev.sims.max() for ev in evidence])
    print(f"recognition on Chinese dev: known pair share min {known.min():.2f}, 1st pct {np.percentile(known, 1):.2f}; "
          f"nearest-item similarity min {nearest.min():.2f}, 1st pct {np.percentile(nearest, 1):.2f}")
    for text in ("鑫淼犇骉魑魅魍魉饕餮", "龘靐齉爩麤", "啊啊啊啊啊啊"):
        ev = bank.gather([text])[0]
        print(f"  {text}: known {ev.known:.2f}, nearest {ev.sims.max():.2f}, recognised {ev.recognised}")
    variants = [("char 1-2 (shipped)", char_vectors((1, 2))), ("char 1-3", char_vectors((1, 3))),
                ("char 2-4", char_vectors((2, 4))), ("jieba words 1-2", word_vectors),
                ("MiniLM packaged", dense_vectors(index.embedder)), ("MiniLM query-tuned", dense_vectors(index.query_embedder))]
    for name, make in variants:
        evaluate_variant(name, make, bank, dev, matcher, index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
