"""Citation stage: chosen clauses -> citations with verbatim quotes.

A quote is one of the clause's quotable spans (sentences, semicolon parts, comma runs: see
_clauses.quote_spans), embedded at index time; the one closest to the input is cut out of the
clause text, so every quote is verbatim by construction.
"""

from __future__ import annotations

import numpy as np

from ._indexing import SPAN_EXCEPTION, SPAN_QUOTE
from ._models import Citation, Clause
from ._retrieval import PolicyIndex

QUOTE_HEAD_BONUS = 0.05
"""The span that states the rule (at the clause's start) wins a near tie over a list's tail:
"12.7 Traffic-directing information contained in profile photos ..." over "Mini Program QR codes"."""


class Quoter:
    """Picks the span of a clause to quote for an input, from the spans embedded at index time."""

    def __init__(self, index: PolicyIndex):
        self.index = index
        self._rows: dict[tuple[int, int], list[int]] = {}
        for row, (pos, _, _, kind) in enumerate(index.spans.tolist()):
            self._rows.setdefault((pos, kind), []).append(row)

    def quote_spans(self, clause: Clause) -> list[tuple[int, int]]:
        """(start, end) of every quotable span of the clause, as indexed."""
        rows = self._rows.get((self.index.position[clause.clause_id], SPAN_QUOTE), [])
        return [(int(start), int(end)) for _, start, end, _ in self.index.spans[rows].tolist()]

    def best_quote(self, clause: Clause, vector: np.ndarray) -> tuple[str, float]:
        """The quotable span of the clause most similar to the input, and that similarity."""
        pos = self.index.position[clause.clause_id]
        rows = self._rows.get((pos, SPAN_QUOTE))
        if not rows:
            return clause.text, 0.0
        spans = self.index.spans[rows]
        scores = self.index.span_vectors[rows] @ vector
        scores = scores + np.where((spans[:, 1] <= 8) & (spans[:, 2] - spans[:, 1] < len(clause.text)), QUOTE_HEAD_BONUS, 0.0)
        best = int(np.argmax(scores))
        return clause.text[spans[best, 1] : spans[best, 2]], float(scores[best])

    def exception_quote(self, clause: Clause, vector: np.ndarray) -> tuple[str, float] | None:
        """The permission or exception written inside the clause that the input comes closest to."""
        rows = self._rows.get((self.index.position[clause.clause_id], SPAN_EXCEPTION))
        if not rows:
            return None
        scores = self.index.span_vectors[rows] @ vector
        best = int(np.argmax(scores))
        _, start, end, _ = self.index.spans[rows[best]]
        return clause.text[start:end], float(scores[best])

    def cite(self, clause: Clause, vector: np.ndarray, score: float, *, permission: bool = False) -> Citation:
        """A citation of the clause, quoting its stated exception when the answer rests on one."""
        found = self.exception_quote(clause, vector) if permission and clause.stance not in {"exception", "permits"} else None
        quote = found[0] if found else self.best_quote(clause, vector)[0]
        return Citation.of(clause, quote=quote, score=score)
