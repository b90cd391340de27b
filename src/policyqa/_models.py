"""Typed values that cross stage boundaries: documents, clauses and retrieval hits.

They are frozen so a value handed from one stage to the next cannot be changed under it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Stance = Literal["prohibits", "permits", "exception", "penalty", "procedure", "definition", "context"]
"""What a clause does. "context" is text that states no rule (introductions, background, statistics)."""

ClauseKind = Literal["paragraph", "item", "example"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PolicyDocument(_Frozen):
    """One policy document in the corpus, with where its text came from."""

    document_id: str
    title: str
    publisher: str
    product: str
    date_given: str | None = Field(description="The date as the text states it; None when it gives none.")
    source_file: str = Field(description="File name under corpus/sources/ the text was cleaned from.")
    corpus_file: str = Field(description="File name under corpus/ holding the cleaned text.")
    note: str = ""
    scope_pattern: str | None = Field(
        None, description="Regex a query must match for this document to be fully in scope; None: always in scope.")


class Clause(_Frozen):
    """The unit of citation: one numbered clause, list item, paragraph or worked example."""

    clause_id: str = Field(examples=["weixin-standards/II.8.3"])
    document_id: str
    document_title: str
    heading_path: tuple[str, ...] = Field(description="Headings above the clause, outermost first.")
    text: str = Field(description="The clause's own words, exactly as in the corpus file.")
    parent_id: str | None = None
    parent_text: str = Field("", description="The parent clause's words, so a list item reads in context.")
    start: int = Field(ge=0, description="Character offset of `text` in the corpus file.")
    end: int = Field(ge=0)
    kind: ClauseKind = "paragraph"
    stance: Stance = "context"
    examples: tuple[str, ...] = Field((), description="Chat-style messages that break this clause (corpus/clause_examples.jsonl).")

    @property
    def heading(self) -> str:
        return " > ".join(self.heading_path)


class Hit(_Frozen):
    """A clause retrieved for a query, with what each retriever thought of it."""

    rank: int = Field(ge=1)
    clause: Clause
    fused_score: float
    dense_score: float | None = Field(None, description="Cosine similarity; None if dense missed it.")
    dense_rank: int | None = None
    bm25_score: float | None = Field(None, description="BM25 score; None if the lexical index missed it.")
    bm25_rank: int | None = None
