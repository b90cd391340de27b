"""Chinese channel: Chinese (and mixed, pinyin-peppered) text -> evidence from the Chinese training items.

The packaged MiniLM reads Chinese poorly (66% of the word pieces of the Chinese dev items are [UNK] to its
tokenizer, and kNN over its vectors reached message AUC 0.84 where character n-grams reach 0.997:
evals/zh_channel.py), so Chinese text is matched on characters instead: TF-IDF over character 1-2-grams of
the Chinese training items (Traditional converted to Simplified first, with OpenCC). Chosen on the
Chinese dev items against character 1-3 and 2-4-grams, jieba words and MiniLM's own vectors
(evals/zh_channel.py).

What the nearest Chinese training items are (violation, benign look-alike, permitted case;
prohibited / allowed / informational / not-covered question) gives named features for a message
and a question classifier of their own (fitted at index time, cross-fitted by fold like the English
ones, calibrated on the Chinese dev items). The clauses a ruling cites are among those the nearest
items of the verdict's kind were written for (clause_candidates: what the citation ranker fitted in
_learning scores; clause_votes: the vote rule for families without one), and each quote is the
English clause's own span that those items quote, so citations stay verbatim English clause text
while the offending span is a verbatim part of the Chinese message.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ._corpus import normalise_for_match
from ._inputs import split_sentences
from ._models import Clause
from ._training import ROLES, TrainingItem, role_of

NGRAMS = (1, 2)
"""Character n-gram lengths. On the Chinese dev items 1-2-grams gave message AUC 0.997, question
accuracy 0.94 and citation hit@5 0.986; 1-3, 2-4 and jieba words were no better on any of them and
MiniLM's vectors far worse (evals/zh_channel.py)."""
NEIGHBOURS = 10
VOTE_TEMPERATURE = 0.05
"""Softmax temperature over the neighbours' similarities: a neighbour 0.05 closer counts e times more."""
CITE_NEIGHBOURS = 20
CITE_SHARE = 0.35
"""A further clause is cited when its vote is at least this share of the leading clause's vote (the
vote rule, for the families without a citation ranker)."""
RANK_CANDIDATES = 8
"""Clauses the citation ranker scores per text, by vote: the ranker reorders what the vote found, it
finds no new clause. Eight leaves it room below the vote's first three; only eight was measured
(evals/compare_zh_citations.py)."""
RECOGNISED_AT = 0.1
"""Below this similarity to every Chinese training item the text is not recognised (gibberish,
another language written in Han characters): a person decides. The lowest nearest-item similarity
of a Chinese dev item was 0.16 (evals/zh_channel.py)."""
KNOWN_AT = 0.2
"""Below this share of known character pairs the text is not recognised either: the lowest share of
a Chinese dev item was 0.50, strings of rare characters score 0 (evals/zh_channel.py prints both)."""
MIN_VIOLATION_LENGTH = 3
"""A Chinese message of fewer letters than this is never ruled a violation: a word alone names no
offence ("出售" for sale, "私聊" DM me, "跑分" a phone's benchmark score or point-running), yet the
nearest training items of such a word are the violations that contain it, and 出售, 私聊 and 跑分
were ruled violations at 0.99. It goes to a person instead. The shortest Chinese dev and test items
have 9 and 10 letters; the training set's short everyday chat ("收到", "在吗") has 2."""
CITE_FAMILY_ROLES = {"prohibit": ("violation", "prohibited"), "info": ("informational",), "permission": ("permitted",)}


# --- language ------------------------------------------------------------------------------------


def language_of(text: str) -> str:
    """"en", "zh" or "other", by script: Han characters make a text Chinese when they are at least a
    fifth of its letters (a Chinese message with "wx" and a price in it is still Chinese); kana or
    Hangul make it another language; otherwise mostly Latin letters make it English."""
    names = [unicodedata.name(ch, "") for ch in text if ch.isalpha()]
    if not names:
        return "other"
    han = sum(1 for n in names if n.startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))) / len(names)
    kana_hangul = sum(1 for n in names if n.startswith(("HIRAGANA", "KATAKANA", "HANGUL"))) / len(names)
    latin = sum(1 for n in names if "LATIN" in n) / len(names)
    if kana_hangul > 0.05:
        return "other"
    if han >= 0.2:
        return "zh"
    return "en" if latin >= 0.5 else "other"


@lru_cache(maxsize=1)
def _converter():
    from opencc import OpenCC

    return OpenCC("t2s")


def normalise(text: str) -> str:
    """Simplified characters, half-width forms, lower case and single spaces: 帳號 and 账号 match."""
    text = unicodedata.normalize("NFKC", text)
    return " ".join(_converter().convert(text).lower().split())


# --- the bilingual glossary -------------------------------------------------------------------------

ZH_GLOSSARY = "zh_glossary.json"
_LATIN_KEY = re.compile(r"[a-z0-9]+")


def read_zh_glossary(path: Path) -> dict[str, str]:
    """Chinese term -> the policies' English words, for the terms that name a topic, from
    corpus/zh_glossary.json (`{"terms": {...}, "signals": [...]}`; none when the file is absent).
    "signals" are terms that say how to get in touch or trade (私聊, 加我, vx) but not which rule
    applies: searching the clauses for "private chat" found the privacy clause for a coded offer
    ("新到一批货，同城配送，要的私聊"), so they are left out. Keys are normalised as texts are.

    Raises:
        CorpusError: the file is not UTF-8 JSON with a "terms" object of strings and a "signals" list of its keys.
    """
    from ._errors import CorpusError

    if not path.is_file():
        return {}
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
        terms, signals = content.get("terms"), content.get("signals", [])
    except (UnicodeDecodeError, ValueError, RecursionError, AttributeError) as exc:
        raise CorpusError(f"{path} is not a UTF-8 JSON object: {exc}") from exc
    if not isinstance(terms, dict) or not all(isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip()
                                              for k, v in terms.items()):
        raise CorpusError(f'{path} must hold {{"terms": {{"<Chinese term>": "<English policy words>", ...}}}}')
    unknown = [s for s in signals if s not in terms] if isinstance(signals, list) else ["(not a list)"]
    if unknown:
        raise CorpusError(f'{path}: "signals" must list keys of "terms"; not keys: {unknown[:5]}')
    left_out = set(signals)
    return {normalise(k): " ".join(v.split()) for k, v in terms.items() if k not in left_out}


def policy_words(text: str, glossary: dict[str, str]) -> str:
    """The policies' English words for the glossary terms in a Chinese text, longest term first and
    without overlaps ("代开发票" is one term, not "代开" and "发票"); a Latin key ("vx") matches only
    as a whole word. Empty when no term occurs."""
    if not glossary:
        return ""
    text = normalise(text)
    longest = max(map(len, glossary))
    words: list[str] = []
    at = 0
    while at < len(text):
        for size in range(min(longest, len(text) - at), 0, -1):
            key = text[at : at + size]
            if key in glossary and not (_LATIN_KEY.fullmatch(key) and _latin_neighbour(text, at, at + size)):
                words.append(glossary[key])
                at += size
                break
        else:
            at += 1
    return " ".join(dict.fromkeys(words))


def _latin_neighbour(text: str, start: int, end: int) -> bool:
    return (start > 0 and text[start - 1].isascii() and text[start - 1].isalnum()) or \
        (end < len(text) and text[end].isascii() and text[end].isalnum())


# --- character n-gram space ------------------------------------------------------------------------


_CONTENT_RUN = re.compile(r"[^\W_]+")


def content_length(text: str) -> int:
    """Letters and digits in a text, after normalisation (punctuation, emoji and spaces do not count)."""
    return sum(len(run) for run in _CONTENT_RUN.findall(normalise(text)))


def ngrams(text: str, sizes: tuple[int, int] = NGRAMS) -> Counter:
    """Character n-grams within runs of letters and digits: punctuation, emoji and spaces separate
    runs and are not features. (With them as features, "…" and "🧧" decided which items were
    nearest to a short message.)"""
    low, high = sizes
    return Counter(run[i : i + n] for run in _CONTENT_RUN.findall(text)
                   for n in range(low, high + 1) for i in range(len(run) - n + 1))


@dataclass(frozen=True)
class NgramSpace:
    """A fitted TF-IDF space (sublinear tf, smoothed idf, l2 norm: scikit-learn's TfidfVectorizer with
    those options and `ngrams` as analyzer), applied with numpy so a ruling never imports scikit-learn."""

    vocabulary: dict[str, int]
    idf: np.ndarray

    @classmethod
    def fit(cls, texts: list[str]) -> NgramSpace:
        documents = Counter(g for text in texts for g in set(ngrams(text)))
        vocabulary = {g: n for n, g in enumerate(sorted(documents))}
        df = np.asarray([documents[g] for g in sorted(documents)], dtype=np.float64)
        return cls(vocabulary, np.log((1 + len(texts)) / (1 + df)) + 1.0)

    def transform(self, texts: list[str]):
        """Rows of l2-normalised TF-IDF weights (a scipy CSR matrix); n-grams never seen are dropped."""
        from scipy.sparse import csr_matrix

        data, indices, indptr = [], [], [0]
        for text in texts:
            row = {self.vocabulary[g]: (1.0 + math.log(c)) * self.idf[self.vocabulary[g]]
                   for g, c in ngrams(text).items() if g in self.vocabulary}
            norm = math.sqrt(sum(v * v for v in row.values())) or 1.0
            for col in sorted(row):
                indices.append(col)
                data.append(row[col] / norm)
            indptr.append(len(indices))
        return csr_matrix((np.asarray(data, dtype=np.float64), np.asarray(indices, dtype=np.int64), indptr),
                          shape=(len(texts), len(self.vocabulary)))

    def to_dict(self) -> dict:
        return {"ngrams": list(NGRAMS), "vocabulary": self.vocabulary, "idf": self.idf.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> NgramSpace:
        if tuple(data.get("ngrams", ())) != NGRAMS:
            raise ValueError(f"n-gram space of sizes {data.get('ngrams')}, this version uses {NGRAMS}")
        return cls(dict(data["vocabulary"]), np.asarray(data["idf"], dtype=np.float64))


# --- the Chinese example bank -----------------------------------------------------------------------

ZH_DIR = "zh"
ZH_ITEMS = "items.jsonl"
ZH_SPACE = "ngrams.json"
ZH_MATRIX = "matrix.npz"


def write_bank(folder: Path, items: list[TrainingItem], folds: list[int]) -> None:
    """The Chinese training items, their n-gram space and their TF-IDF rows, into <build>/zh/."""
    from scipy.sparse import save_npz

    folder.mkdir(parents=True, exist_ok=True)
    texts = [normalise(item.text) for item in items]
    space = NgramSpace.fit(texts)
    with (folder / ZH_ITEMS).open("w", encoding="utf-8") as handle:
        for item, fold in zip(items, folds):
            handle.write(json.dumps({"fold": fold, "item": item.model_dump(mode="json")}, ensure_ascii=False) + "\n")
    (folder / ZH_SPACE).write_text(json.dumps(space.to_dict(), ensure_ascii=False), encoding="utf-8")
    save_npz(folder / ZH_MATRIX, space.transform(texts).astype(np.float32), compressed=False)


@dataclass
class ChineseEvidence:
    """What the Chinese training items say about one text (a whole message, a sentence or a question)."""

    text: str
    sims: np.ndarray  # per Chinese training item: cosine of the character n-gram vectors (-1 where left out)
    known: float = 1.0  # share of the text's character pairs that occur in some training item

    @property
    def recognised(self) -> bool:
        return bool(len(self.sims)) and float(self.sims.max()) >= RECOGNISED_AT and self.known >= KNOWN_AT


class ChineseBank:
    """The Chinese training items of an index, and the features and citations they give a text."""

    def __init__(self, items: list[TrainingItem], folds: np.ndarray, space: NgramSpace, matrix,
                 position: dict[str, int]):
        self.items, self.folds, self.space, self.matrix = items, np.asarray(folds), space, matrix.tocsr()
        self.roles = np.asarray([ROLES.index(role_of(item)) for item in items], dtype=np.int32)
        self.role_masks = {role: self.roles == n for n, role in enumerate(ROLES)}
        self.item_clauses = [tuple(position[cid] for cid in item.clause_ids if cid in position) for item in items]
        self.single_sentence = np.asarray([not message_parts(item.text) for item in items], dtype=bool)

    @classmethod
    def load(cls, folder: Path, position: dict[str, int]) -> ChineseBank | None:
        """The bank of an index build, or None when the build has no Chinese items."""
        from scipy.sparse import load_npz

        if not (folder / ZH_ITEMS).is_file():
            return None
        rows = [json.loads(line) for line in (folder / ZH_ITEMS).read_text(encoding="utf-8").splitlines() if line.strip()]
        items = [TrainingItem.model_validate(row["item"]) for row in rows]
        space = NgramSpace.from_dict(json.loads((folder / ZH_SPACE).read_text(encoding="utf-8")))
        matrix = load_npz(folder / ZH_MATRIX)
        if matrix.shape != (len(items), len(space.vocabulary)):
            raise ValueError(f"the Chinese bank in {folder} is inconsistent")
        return cls(items, np.asarray([row["fold"] for row in rows]), space, matrix, position)

    def gather(self, texts: list[str], fold: int | None = None) -> list[ChineseEvidence]:
        """Similarities of each text to every Chinese training item; with `fold`, that fold's items
        are left out (cross-fitting: features as an unseen text would get them)."""
        if not texts:
            return []
        normalised = [normalise(t) for t in texts]
        sims = (self.space.transform(normalised) @ self.matrix.T).toarray()
        if fold is not None:
            sims[:, self.folds == fold] = -1.0
        return [ChineseEvidence(text, row, self.known_share(n)) for text, n, row in zip(texts, normalised, sims)]

    def known_share(self, normalised: str) -> float:
        """Share of a normalised text's character pairs (single characters, for a text of one) that the
        training items contain: real chat reuses pairs; a string of rare characters does not."""
        pairs = ngrams(normalised, (2, 2)) or ngrams(normalised, (1, 1))
        total = sum(pairs.values())
        return sum(c for g, c in pairs.items() if g in self.space.vocabulary) / total if total else 0.0

    # --- features -----------------------------------------------------------------------------

    def features(self, ev: ChineseEvidence) -> dict[str, float]:
        """The nearest item of each kind and how the nearest ten vote."""
        top = np.argsort(-ev.sims, kind="stable")[:NEIGHBOURS]
        weights = _softmax(ev.sims[top])
        votes = np.zeros(len(ROLES))
        np.add.at(votes, self.roles[top], weights)
        out = {"nearest_any": float(ev.sims.max()) if len(ev.sims) else 0.0}
        for n, role in enumerate(ROLES):
            mask = self.role_masks[role]
            out[f"nearest_{role}"] = float(ev.sims[mask].max()) if mask.any() else 0.0
            out[f"vote_{role}"] = float(votes[n])
        return out

    def message_features(self, whole: ChineseEvidence, parts: list[ChineseEvidence]) -> dict[str, float]:
        """Features of the whole message, plus those of its riskiest sentence against one-sentence
        training items (see riskiest_sentence: sentence-level evidence that an opener shared with a
        multi-sentence violation cannot fake)."""
        out = self.features(whole)
        riskiest = self.riskiest_sentence(whole, parts)
        for name, value in self.features(self._single(riskiest)).items():
            out[f"part_{name}"] = value
        return out

    def _single(self, ev: ChineseEvidence) -> ChineseEvidence:
        return ChineseEvidence(ev.text, np.where(self.single_sentence, ev.sims, -1.0))

    def riskiest_sentence(self, whole: ChineseEvidence, parts: list[ChineseEvidence]) -> ChineseEvidence:
        """The sentence whose nearest items lean most towards a violation (the whole, for one sentence).
        A sentence is compared with one-sentence training items only: a harmless opener
        ("今天天气不错。") sits verbatim inside multi-sentence training violations, whose label belongs
        to another of their sentences."""
        return self.sentences_by_risk(whole, parts)[0]

    def sentences_by_risk(self, whole: ChineseEvidence, parts: list[ChineseEvidence]) -> list[ChineseEvidence]:
        """A message's sentences, riskiest first (see riskiest_sentence); the whole, for one sentence."""
        if not parts:
            return [whole]

        def risk(ev: ChineseEvidence) -> float:
            f = self.features(self._single(ev))
            return f["vote_violation"] + 0.5 * (f["nearest_violation"] - f["nearest_benign"])
        return sorted(parts, key=risk, reverse=True)  # stable: ties keep the message's order

    def clause_ranking(self, texts: list[str], limit: int) -> list[list[tuple[int, float]]]:
        """Per text: (clause position, similarity of the nearest Chinese item written for it), best
        first: the Chinese counterpart of BM25 in search, since English BM25 sees no Chinese words."""
        out = []
        for ev in self.gather(texts):
            best: dict[int, float] = {}
            for n in np.argsort(-ev.sims, kind="stable")[: limit * 4]:
                if ev.sims[n] <= 0:
                    break
                for pos in self.item_clauses[n][:1]:
                    best.setdefault(pos, float(ev.sims[n]))
            out.append(sorted(best.items(), key=lambda kv: -kv[1])[:limit])
        return out

    # --- citations ----------------------------------------------------------------------------

    def _tally(self, ev: ChineseEvidence, family: str):
        """The nearest items of this verdict family (at most CITE_NEIGHBOURS) and, per clause they
        name: its vote, its nearest item, and how many of them name it first / at all. A further
        clause an item names counts half: it is true of the item, but the item was written for its first."""
        roles = [ROLES.index(r) for r in CITE_FAMILY_ROLES[family]]
        members = np.flatnonzero(np.isin(self.roles, roles) & (ev.sims > 0))
        top = members[np.argsort(-ev.sims[members], kind="stable")[:CITE_NEIGHBOURS]]
        votes: dict[int, float] = {}
        nearest: dict[int, int] = {}
        first: Counter = Counter()
        named: Counter = Counter()
        for n, w in zip(top, _softmax(ev.sims[top]) if len(top) else []):
            for k, pos in enumerate(self.item_clauses[n]):
                votes[pos] = votes.get(pos, 0.0) + (w if k == 0 else 0.5 * w)
                nearest.setdefault(pos, int(n))
                named[pos] += 1
                first[pos] += k == 0
        return top, votes, nearest, first, named

    def clause_votes(self, ev: ChineseEvidence, family: str) -> list[tuple[int, float, int]]:
        """(clause position, vote share, the nearest item that names it) for the clauses the nearest
        items of this verdict family were written for, best first."""
        _, votes, nearest, _, _ = self._tally(ev, family)
        return sorted(((pos, v, nearest[pos]) for pos, v in votes.items()), key=lambda t: -t[1])

    def clause_candidates(self, ev: ChineseEvidence, family: str,
                          out_of_scope: set[int] = frozenset()) -> list[tuple[int, int, dict[str, float]]]:
        """(clause position, its nearest item, features) for the RANK_CANDIDATES clauses with the most
        votes: what the Chinese citation ranker (fitted at index time, _learning) reads. The features
        say how the vote went (share, rank, how many neighbours name the clause) and how close the
        clause's nearest item is, absolutely and against the nearest item of all."""
        top, votes, nearest, first, named = self._tally(ev, family)
        ranked = sorted(votes.items(), key=lambda kv: -kv[1])[:RANK_CANDIDATES]
        if not ranked:
            return []
        lead_vote, nearest_sim = ranked[0][1], float(ev.sims[top[0]])
        runner_up = ranked[1][1] / lead_vote if len(ranked) > 1 else 0.0
        out = []
        for rank, (pos, vote) in enumerate(ranked):
            sim = float(ev.sims[nearest[pos]])
            out.append((pos, nearest[pos], {
                "vote": vote, "vote_vs_lead": vote / lead_vote, "rank": float(rank),
                "sim": sim, "sim_gap": nearest_sim - sim, "nearest_sim": nearest_sim,
                "named_first": first[pos] / len(top), "named": named[pos] / len(top),
                "out_of_scope": float(pos in out_of_scope), "runner_up": runner_up if rank == 0 else 0.0,
            }))
        return out

    def quote_for(self, clause: Clause, item: int, spans: list[tuple[int, int]]) -> str:
        """The words of the clause that the nearest training item quotes, cut from the clause text
        (verbatim): the item's quote itself when it is verbatim, else the clause span it overlaps most."""
        quote = next((ref.quote for ref in self.items[item].clauses if ref.clause_id == clause.clause_id), "")
        if quote and quote in clause.text:
            return quote
        wanted = normalise_for_match(quote)
        best, best_score = None, -1.0
        for start, end in spans:
            span = normalise_for_match(clause.text[start:end])
            score = (len(span) if span in wanted else len(wanted) if wanted in span else 0) / max(len(span), len(wanted), 1)
            if score > best_score:
                best, best_score = clause.text[start:end], score
        return best or clause.text


def _softmax(sims: np.ndarray) -> np.ndarray:
    z = (sims - sims.max()) / VOTE_TEMPERATURE
    e = np.exp(z)
    return e / e.sum()


def message_parts(message: str) -> list[str]:
    """A message's sentences when it has more than one (each a verbatim substring of it)."""
    sentences = split_sentences(message)
    return sentences if len(sentences) > 1 else []
