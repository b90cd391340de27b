"""Training data: hand-written, policy-grounded examples the decision layer learns from.

`corpus/training/**/*.jsonl` holds one item per line. Every item that relies on a clause names it
by `clause_id` and a verbatim `quote` of its words, checked here on load, so a renumbered or edited
clause fails loudly instead of silently training on the wrong rule. The evaluation sets
(evals/datasets/) are written separately; tests/test_training.py proves no training item is a
near-duplicate of an evaluation item.

Item kinds, by label:
- message `violation` / question `prohibited`: breaks (or asks about) the named prohibiting clauses;
- message `no_violation` with clauses: a case a stated permission or exception covers;
- message `no_violation` without clauses: a benign near-miss, `near` naming the clause it resembles,
  or everyday chat that resembles no rule (style "everyday", no `near`);
- question `allowed` (cites the permission), `informational` (cites the procedure, penalty or
  definition), `not_covered` (cites nothing: the policies do not settle it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._corpus import normalise_for_match
from ._errors import CorpusError
from ._models import Clause

TRAINING_DIR = "training"

TrainingLabel = Literal["violation", "no_violation", "prohibited", "allowed", "informational", "not_covered"]
_MESSAGE_LABELS = {"violation", "no_violation"}
_QUESTION_LABELS = {"prohibited", "allowed", "informational", "not_covered"}
_NEEDS_CLAUSES = {"violation", "prohibited", "allowed", "informational"}


class ClauseRef(BaseModel):
    """A clause an item relies on, with the words of it that decide the item."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    clause_id: str = Field(min_length=3)
    quote: str = Field(min_length=3, description="Verbatim words of the clause (compared after normalise_for_match).")


class TrainingItem(BaseModel):
    """One hand-written training example."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    kind: Literal["message", "question"]
    text: str = Field(min_length=2, max_length=2000)
    label: TrainingLabel
    clauses: tuple[ClauseRef, ...] = ()
    near: str | None = Field(None, description="Benign near-misses: the clause whose wording the text resembles.")
    lang: Literal["en", "zh"] = "en"
    style: str = Field("", description="Free-form style tag: slang, typo, emoji, multi-sentence, coded, business...")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value

    @property
    def clause_ids(self) -> tuple[str, ...]:
        return tuple(ref.clause_id for ref in self.clauses)

    @property
    def is_permitted_case(self) -> bool:
        """A message a stated permission or exception covers."""
        return self.label == "no_violation" and bool(self.clauses)


def item_problems(item: TrainingItem, clauses: dict[str, Clause]) -> list[str]:
    """Why an item is not valid against the corpus (empty when it is)."""
    problems = []
    if item.kind == "message" and item.label not in _MESSAGE_LABELS:
        problems.append(f"label {item.label!r} does not fit a message")
    if item.kind == "question" and item.label not in _QUESTION_LABELS:
        problems.append(f"label {item.label!r} does not fit a question")
    if item.label in _NEEDS_CLAUSES and not item.clauses:
        problems.append(f"a {item.label} item must name the clauses it relies on")
    if item.label == "not_covered" and item.clauses:
        problems.append("a not_covered item cites no clause")
    if item.label == "no_violation" and not item.clauses and not item.near and "everyday" not in item.style:
        problems.append("a benign near-miss names the clause it resembles in `near` (or is style 'everyday')")
    if item.near is not None and item.near not in clauses:
        problems.append(f"near: unknown clause id {item.near!r}")
    for ref in item.clauses:
        clause = clauses.get(ref.clause_id)
        if clause is None:
            problems.append(f"unknown clause id {ref.clause_id!r}")
        elif normalise_for_match(ref.quote) not in normalise_for_match(clause.text):
            problems.append(f"quote {ref.quote[:60]!r} is not in the text of {ref.clause_id}")
    return problems


def training_files(corpus_dir: Path) -> list[Path]:
    folder = corpus_dir / TRAINING_DIR
    return sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []


def check_training_files(paths: Iterable[Path], clauses: list[Clause]) -> tuple[list[TrainingItem], list[str]]:
    """Parse and validate training files; returns (valid items, problems as 'file:line: what')."""
    by_id = {c.clause_id: c for c in clauses}
    items: list[TrainingItem] = []
    problems: list[str] = []
    seen_ids: dict[str, str] = {}
    seen_texts: dict[tuple[str, str], str] = {}
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: cannot read: {exc}")
            continue
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                item = TrainingItem.model_validate(json.loads(line))
            except (ValueError, ValidationError) as exc:
                problems.append(f"{where}: {' '.join(str(exc).split())[:300]}")
                continue
            found = item_problems(item, by_id)
            if item.id in seen_ids:
                found.append(f"id {item.id!r} already used at {seen_ids[item.id]}")
            key = (item.kind, " ".join(item.text.split()).casefold())
            if key in seen_texts:
                found.append(f"same text as {seen_texts[key]}")
            problems.extend(f"{where}: {p}" for p in found)
            if not found:
                seen_ids[item.id] = where
                seen_texts[key] = where
                items.append(item)
    return items, problems


def load_training(corpus_dir: Path, clauses: list[Clause]) -> list[TrainingItem]:
    """Every training item under corpus/training/, validated against the clauses.

    Raises:
        CorpusError: any item is malformed or cites a clause or quote that does not exist.
    """
    items, problems = check_training_files(training_files(corpus_dir), clauses)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise CorpusError("invalid training data: " + "; ".join(problems[:5]) + more)
    return items


def check_training_data(paths: list[Path] | None = None, settings=None) -> tuple[list[TrainingItem], list[str]]:
    """Validate training files (default: every file under corpus/training/) against the corpus.

    Returns (valid items, problems as 'file:line: what'); never raises for a bad item.
    """
    from ._config import load_settings
    from ._indexing import load_clauses  # parsing only: no model is loaded

    settings = settings or load_settings()
    files: list[Path] = []
    for path in paths or [settings.corpus_dir / TRAINING_DIR]:
        files.extend(sorted(path.rglob("*.jsonl")) if path.is_dir() else [path])
    return check_training_files(files, load_clauses(settings))


# --- Overlap with the evaluation data ----------------------------------------------------------------

NEAR_DUPLICATE_COSINE = 0.92
"""A training text this close (packaged-model cosine) to an evaluation text would leak it."""
NEAR_DUPLICATE_BIGRAMS = 0.5
"""The same for Chinese, by character-bigram cosine: the packaged model reads almost no Chinese
(244 CJK characters in its vocabulary; the rest become [UNK]), so its cosine between two Chinese
sentences says nothing. At 0.5 every pair flagged on inspection was a paraphrase of the same item."""


def cjk_share(text: str) -> float:
    """Share of letters that are CJK ideographs."""
    letters = [ch for ch in text if ch.isalpha()]
    return sum(1 for ch in letters if "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff") / len(letters) if letters else 0.0


def bigram_cosines(left: list[str], right: list[str]):
    """Character-bigram cosine of every left text against every right text (whitespace ignored)."""
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import normalize

    def squeeze(text: str) -> str:
        return "".join(text.lower().split())

    vectoriser = CountVectorizer(analyzer="char", ngram_range=(2, 2), preprocessor=squeeze)
    matrix = normalize(vectoriser.fit_transform(left + right))
    return (matrix[: len(left)] @ matrix[len(left) :].T).toarray()


def near_duplicates(training: list[str], evaluation: list[str], encode, *, cosine: float = NEAR_DUPLICATE_COSINE,
                    bigrams: float = NEAR_DUPLICATE_BIGRAMS) -> list[tuple[int, int, float]]:
    """(training index, evaluation index, similarity) of every training text too close to an evaluation
    text: by the embedding cosine for texts in Latin script, by character bigrams for Chinese.
    `encode` turns texts into unit vectors (the packaged model in the test)."""
    import numpy as np

    found: list[tuple[int, int, float]] = []
    for chinese, threshold in ((False, cosine), (True, bigrams)):
        left = [n for n, t in enumerate(training) if (cjk_share(t) >= 0.3) == chinese]
        right = [n for n, t in enumerate(evaluation) if (cjk_share(t) >= 0.3) == chinese]
        if not left or not right:
            continue
        if chinese:
            scores = bigram_cosines([training[n] for n in left], [evaluation[n] for n in right])
        else:
            scores = encode([training[n] for n in left]) @ encode([evaluation[n] for n in right]).T
        best, where = scores.max(axis=1), scores.argmax(axis=1)
        found.extend((left[i], right[int(where[i])], float(best[i])) for i in np.flatnonzero(best >= threshold))
    return sorted(found)


ROLES = ("violation", "benign", "permitted", "prohibited", "informational", "not_covered")
"""What a training item is: a violating message, a benign near-miss, a case a permission covers
(message or question), or a question that is prohibited / informational / not covered."""

def role_of(item: TrainingItem) -> str:
    """The item's role in the example bank (one of ROLES)."""
    if item.label == "no_violation":
        return "permitted" if item.clauses else "benign"
    return "permitted" if item.label == "allowed" else item.label
