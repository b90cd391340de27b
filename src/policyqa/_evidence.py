"""Evidence stage: a text -> what retrieval and the example bank say about it, as named features.

A ruling decides from evidence, never from raw scores scattered through the code. For a text:
- the fused clause ranking (the same hybrid search users see);
- for every clause, the best similarity of its own wording and of its training examples;
- the similarity to every item of the example bank (corpus/training/, embedded at index time),
  whose labels say what similar texts turned out to be;
- BM25 scores of the clauses BM25 found.

Features are computed from this by small pure functions, identically at query time and when the
models are fitted; during fitting a training item's own fold is left out of the bank, the example
rows and BM25 (`fold=`), so its features look like those of a text never seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._indexing import SPAN_EXCEPTION
from ._models import Hit
from ._retrieval import PolicyIndex
from ._inputs import split_sentences  # noqa: F401 - part of this stage's vocabulary
from ._training import ROLES, TrainingItem, role_of  # noqa: F401

KIND_ROLES = {"question": ("prohibited", "informational", "not_covered", "permitted"),
              "message": ("violation", "benign", "permitted")}
STANCE_GROUPS = {"prohibits": "prohibit", "penalty": "info", "procedure": "info", "definition": "info",
                 "exception": "permission", "permits": "permission", "context": "context"}
HITS = 20
"""Fused hits kept per text: the citation selector's main candidates (hit@20 on dev is ~0.99)."""
NEIGHBOURS = 10
VOTE_TEMPERATURE = 0.05
"""Neighbour votes weigh exp((similarity - best) / T): at 0.05 a neighbour 0.05 below the best
counts e^-1 as much, so a vote reflects the few closest items, not the crowd."""



@dataclass
class Evidence:
    """What the index says about one text (a question, a whole message or one of its sentences)."""

    text: str
    vector: np.ndarray
    hits: list[Hit]
    wording: np.ndarray  # per clause position: best similarity of the clause's own wording
    examples: np.ndarray  # per clause position: best similarity of its training examples (0: none)
    bank: np.ndarray  # per training item: similarity (-1 where left out)
    bm25: dict[int, float]  # clause position -> BM25 score
    wording_bm25: dict[int, float] = field(default_factory=dict)  # the same over the clause's own words only

    def neighbours(self, k: int = NEIGHBOURS) -> np.ndarray:
        """Positions of the k nearest training items, nearest first."""
        k = min(k, len(self.bank))
        if k <= 0:
            return np.zeros(0, dtype=np.int64)
        top = np.argpartition(-self.bank, k - 1)[:k]
        return top[np.argsort(-self.bank[top], kind="stable")]


class EvidenceSource:
    """Gathers evidence from a loaded index; holds the arrays that make that a few matrix products."""

    def __init__(self, index: PolicyIndex):
        self.index = index
        clauses = index.clauses
        wording = np.flatnonzero(index.row_items < 0)
        self._wording_rows = wording
        self._wording_starts = _group_starts(index._owners[wording])
        example_rows = np.flatnonzero(index.row_items >= 0)
        order = example_rows[np.argsort(index._owners[example_rows], kind="stable")]
        self._example_items = index.row_items[order]
        owners = index._owners[order]
        self._example_starts = _group_starts(owners)
        self._example_owners = owners[self._example_starts] if len(owners) else owners
        self.roles = np.asarray([ROLES.index(role_of(item)) for item in index.examples], dtype=np.int32)
        self.is_question = np.asarray([item.kind == "question" for item in index.examples], dtype=bool)
        self.role_masks = {role: self.roles == n for n, role in enumerate(ROLES)}
        self.stance_group = [STANCE_GROUPS[c.stance] for c in clauses]
        self.group_masks = {g: np.asarray([s == g for s in self.stance_group]) for g in set(STANCE_GROUPS.values())}
        self.item_clauses = [tuple(index.position[cid] for cid in item.clause_ids if cid in index.position)
                             for item in index.examples]
        children: set[int] = {index.position[c.parent_id] for c in clauses if c.parent_id in index.position}
        self.has_children = np.asarray([n in children for n in range(len(clauses))])
        exception = index.spans[:, 3] == SPAN_EXCEPTION if len(index.spans) else np.zeros(0, dtype=bool)
        self._exception_owner = index.spans[exception, 0] if len(index.spans) else np.zeros(0, dtype=np.int32)
        self._exception_vectors = index.span_vectors[exception] if len(index.spans) else index.span_vectors
        self._not_governing: dict[str, frozenset[int]] = {}  # product -> clause positions it does not govern

    def gather(self, texts: list[str], *, vectors: np.ndarray | None = None, fold: int | None = None,
               lexical=None) -> list[Evidence]:
        """Evidence for each text. `fold` leaves that fold of training items out (model fitting only),
        with `lexical` a BM25 index built without their examples."""
        index = self.index
        if not texts:
            return []
        vectors = index.encode(texts) if vectors is None else vectors
        bank = vectors @ index.example_vectors.T if len(index.examples) else np.zeros((len(texts), 0), np.float32)
        if fold is not None:
            bank[:, index.example_folds == fold] = -1.0
        wording_sims = vectors @ index.row_vectors[self._wording_rows].T
        wording = np.maximum.reduceat(wording_sims, self._wording_starts, axis=1)
        examples = np.zeros((len(texts), len(index.clauses)), dtype=np.float32)
        if len(self._example_items):
            best = np.maximum.reduceat(bank[:, self._example_items], self._example_starts, axis=1)
            examples[:, self._example_owners] = np.maximum(best, 0.0)
        candidates = max(index.settings.candidates, HITS)
        dense_scores = np.maximum(wording, examples)
        dense = [_top(row, candidates) for row in dense_scores]
        settings = index.settings
        queries = [index.expand(t) if settings.expand_queries else t for t in texts]
        lexical_rankings = index.lexical_ranking(queries, candidates, lexical=lexical)
        wording_rankings = index.lexical_ranking(queries, candidates, lexical=index.wording_lexical)
        out = []
        for n, text in enumerate(texts):
            hits = index.fuse(text, dense[n], lexical_rankings[n], HITS)
            out.append(Evidence(text=text, vector=vectors[n], hits=hits, wording=wording[n], examples=examples[n],
                                bank=bank[n], bm25=dict(lexical_rankings[n]), wording_bm25=dict(wording_rankings[n])))
        return out

    # --- features ---------------------------------------------------------------------------------

    def segment_features(self, ev: Evidence) -> dict[str, float]:
        """What one text looks like: how close the nearest clauses of each kind and the nearest
        training items of each role come, and how its nearest neighbours vote."""
        features: dict[str, float] = {}
        for group in ("prohibit", "info", "permission"):
            mask = self.group_masks.get(group)
            features[f"wording_{group}"] = float(ev.wording[mask].max()) if mask is not None and mask.any() else 0.0
        features["wording_top"] = float(ev.wording.max()) if len(ev.wording) else 0.0
        features["bm25_top"] = math.log1p(max(ev.bm25.values(), default=0.0))
        votes = role_votes(ev.bank, ev.neighbours(), self.roles)
        for n, role in enumerate(ROLES):
            mask = self.role_masks[role]
            features[f"nearest_{role}"] = float(ev.bank[mask].max()) if mask.any() else 0.0
            features[f"vote_{role}"] = float(votes[n])
        for kind, mask in (("question", self.is_question), ("message", ~self.is_question)):
            # Neighbours of the same kind vote on their own: a question's nearest questions say how
            # questions like it were answered, whatever the messages near it were.
            same = np.where(mask, ev.bank, -1.0) if mask.any() else ev.bank
            kind_votes = role_votes(same, _top_positions(same, NEIGHBOURS), self.roles)
            for n, role in enumerate(ROLES):
                if role in KIND_ROLES[kind]:
                    features[f"{kind}_vote_{role}"] = float(kind_votes[n])
        features["violation_margin"] = features["nearest_violation"] - max(features["nearest_benign"],
                                                                         features["nearest_permitted"])
        features["exception"] = self.exception_score(ev, [h.clause for h in ev.hits[:6]])
        return features

    def exception_score(self, ev: Evidence, clauses) -> float:
        """How close the text comes to a permission written inside one of these clauses
        ("excluding lawful activities such as boxing, hunting, or food preparation")."""
        wanted = [self.index.position[c.clause_id] for c in clauses]
        mask = np.isin(self._exception_owner, wanted)
        return float((self._exception_vectors[mask] @ ev.vector).max()) if mask.any() else 0.0

    def message_features_and_segment(self, whole: Evidence, sentences: list[Evidence]) -> tuple[dict[str, float], Evidence]:
        """A message's features, and the segment a ruling points at. The features are the whole
        message's, then those of its riskiest sentence (the whole again when it has one), so a single
        bad sentence among chat is not averaged away; that sentence (or the whole) is the segment.
        Each sentence's features are computed once: this runs for every message judged."""
        features = self.segment_features(whole)
        scored = [(self.segment_features(ev), ev) for ev in sentences] or [(features, whole)]
        riskiest, segment = max(scored, key=lambda pair: pair[0]["vote_violation"] + pair[0]["nearest_violation"])
        features.update({f"sentence_{name}": value for name, value in riskiest.items()})
        features["sentences"] = math.log1p(len(sentences))
        return features, segment

    # --- citation candidates ------------------------------------------------------------------------

    def out_of_scope(self, text: str, context=None) -> set[int]:
        """Positions of clauses whose document states a scope (WeCom's rules: WeCom accounts) the text
        does not name. A given product settles the scope instead (see `not_governing`)."""
        if getattr(context, "product", None) is not None:
            return set()
        missing = {doc for doc, pattern in self.index._scopes.items() if not pattern.search(text)}
        return {pos for pos, clause in enumerate(self.index.clauses) if clause.document_id in missing}

    def not_governing(self, context) -> set[int]:
        """Positions of clauses whose document does not govern the context's product (none without one)."""
        product = getattr(context, "product", None)
        if product is None:
            return set()
        if product not in self._not_governing:
            self._not_governing[product] = frozenset(
                pos for pos, clause in enumerate(self.index.clauses) if product not in clause.products)
        return self._not_governing[product]

    def governed(self, ranked: list[tuple[int, float]], context) -> list[tuple[int, float]]:
        """`ranked` without the clauses of documents that do not govern the context's product."""
        excluded = self.not_governing(context)
        return [pair for pair in ranked if pair[0] not in excluded] if excluded else ranked

    def candidates(self, ev: Evidence) -> list[int]:
        """Clause positions worth considering for citation: the fused hits, the clauses the nearest
        training items cite, and the clauses whose wording or examples come closest."""
        out = [self.index.position[h.clause.clause_id] for h in ev.hits]
        for item in ev.neighbours():
            out.extend(self.item_clauses[item])
        out.extend(int(p) for p in _top_positions(ev.examples, 10))
        out.extend(int(p) for p in _top_positions(ev.wording, 10))
        return list(dict.fromkeys(out))

    def candidate_features(self, ev: Evidence, positions: list[int], context=None) -> list[dict[str, float]]:
        """Features of (text, clause) pairs, for the citation selector. A product given with the text
        names the scope of the documents that govern it, as if the text had said so."""
        clauses = self.index.clauses
        fused = {self.index.position[h.clause.clause_id]: h for h in ev.hits}
        wording_rank = _ranks(ev.wording)
        example_rank = _ranks(ev.examples)
        votes = clause_votes(ev.bank, ev.neighbours(), self.item_clauses)
        top_wording = float(ev.wording.max())
        top_example = float(ev.examples.max())
        top_bm25 = max(ev.bm25.values(), default=0.0)
        top_wording_bm25 = max(ev.wording_bm25.values(), default=0.0)
        scopes = self.index._scopes  # document id -> the pattern a text must match for it to be in scope
        named = {doc for doc, pattern in scopes.items() if pattern.search(ev.text)}
        product = getattr(context, "product", None)
        if product is not None:
            named |= {p.document_id for p in self.index.profiles if product in p.products and p.document_id in scopes}
        out = []
        for pos in positions:
            clause = clauses[pos]
            hit = fused.get(pos)
            group = self.stance_group[pos]
            out.append({
                "fused": (hit.fused_score * 100.0) if hit else 0.0,
                "fused_rank": 1.0 / hit.rank if hit else 0.0,
                "wording": float(ev.wording[pos]),
                "wording_gap": float(ev.wording[pos]) - top_wording,
                "wording_rank": 1.0 / wording_rank[pos],
                "example": float(ev.examples[pos]),
                "example_gap": float(ev.examples[pos]) - top_example,
                "example_rank": 1.0 / example_rank[pos] if ev.examples[pos] > 0 else 0.0,
                "vote": votes.get(pos, 0.0),
                "bm25": ev.bm25.get(pos, 0.0) / top_bm25 if top_bm25 > 0 else 0.0,
                # does the clause's own wording match, apart from its examples ("identity cards")?
                "wording_bm25": ev.wording_bm25.get(pos, 0.0) / top_wording_bm25 if top_wording_bm25 > 0 else 0.0,
                "stance_prohibit": float(group == "prohibit"),
                "stance_info": float(group == "info"),
                "stance_permission": float(group == "permission"),
                "stance_context": float(group == "context"),
                "kind_example": float(clause.kind == "example"),
                "kind_item": float(clause.kind == "item"),
                "umbrella": float(self.has_children[pos]),
                "depth": float(len(clause.heading_path)),
                "exception": self.exception_score(ev, [clause]),
                # WeCom's rules govern WeCom accounts: the selector learns how much a scoped document's
                # clause needs the text to say it is in that scope.
                "scoped": float(clause.document_id in scopes),
                "scope_named": float(clause.document_id in named),
            })
        return out


def role_votes(bank: np.ndarray, neighbours: np.ndarray, roles: np.ndarray) -> np.ndarray:
    """Share of the neighbours' weight held by each role (weights: exp((sim - best) / T))."""
    votes = np.zeros(len(ROLES))
    if not len(neighbours):
        return votes
    weights = _weights(bank[neighbours])
    np.add.at(votes, roles[neighbours], weights)
    return votes / weights.sum()


def clause_votes(bank: np.ndarray, neighbours: np.ndarray, item_clauses: list[tuple[int, ...]]) -> dict[int, float]:
    """Share of the neighbours' weight that cites each clause (a second-named clause counts half)."""
    if not len(neighbours):
        return {}
    weights = _weights(bank[neighbours])
    total = float(weights.sum())
    out: dict[int, float] = {}
    for item, weight in zip(neighbours, weights):
        for order, pos in enumerate(item_clauses[item]):
            out[pos] = out.get(pos, 0.0) + float(weight) * (1.0 if order == 0 else 0.5) / total
    return out


def _weights(similarities: np.ndarray) -> np.ndarray:
    return np.exp((similarities - similarities.max()) / VOTE_TEMPERATURE)


def _group_starts(owners: np.ndarray) -> np.ndarray:
    """Start offsets of each run of equal owners (owners sorted)."""
    if not len(owners):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])


def _top(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    positions = _top_positions(scores, k)
    return [(int(p), float(scores[p])) for p in positions if scores[p] > 0]


def _top_positions(scores: np.ndarray, k: int) -> np.ndarray:
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of every position by descending score."""
    ranks = np.empty(len(scores), dtype=np.int64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return ranks
