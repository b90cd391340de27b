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
    date_given: str | None = Field(None, description="The date as the text states it; None when it gives none.")
    source_file: str = Field(description="File name under corpus/sources/ the text was cleaned from.")
    corpus_file: str = Field(description="File name under corpus/ holding the cleaned text.")
    note: str = ""
    scope_pattern: str | None = Field(
        None, description="Regex a query must match for this document to be fully in scope; None: always in scope.")
    products: tuple[str, ...] = Field((), description="The products whose content this document governs "
                                                      "(keys of corpus/products.toml).")


class Clause(_Frozen):
    """The unit of citation: one numbered clause, list item, paragraph or worked example."""

    clause_id: str = Field(description="'<document id>/<the document's own numbering>'.")
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
    examples: tuple[str, ...] = Field((), description="Training texts that exemplify this clause (corpus/training/).")
    products: tuple[str, ...] = Field((), description="The products its document governs.")

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


AnswerVerdict = Literal["prohibited", "allowed", "informational", "not_covered"]
RulingVerdict = Literal["violation", "no_violation", "needs_review"]


class Citation(_Frozen):
    """A clause relied on, with the exact span of it that supports the answer."""

    clause_id: str
    document: str = Field(description="The policy document's title.")
    heading_path: str
    text: str = Field(description="The clause's full text.")
    quote: str = Field(description="The span of `text` that supports the answer; always a verbatim substring.")
    score: float = Field(description="How strongly retrieval tied the clause to the input (cosine similarity).")
    stance: Stance = "context"
    products: tuple[str, ...] = Field((), description="The products whose content the clause's document governs.")
    applies_because: str | None = Field(None, description="For a penalty: why it applies to this case.")

    @classmethod
    def of(cls, clause: Clause, *, quote: str, score: float, applies_because: str | None = None) -> Citation:
        if quote not in clause.text:
            raise ValueError(f"quote is not a verbatim substring of {clause.clause_id}")
        return cls(clause_id=clause.clause_id, document=clause.document_title, heading_path=clause.heading,
                   text=clause.text, quote=quote, score=round(float(score), 4), stance=clause.stance,
                   products=clause.products, applies_because=applies_because)


class Violation(Citation):
    """A clause a message breaks: which words of the message break it, and why."""

    message_span: str = Field(description="The part of the message that breaks the clause (verbatim).")
    reason: str


class Answer(_Frozen):
    """What `ask` returns. `not_covered` means the policies do not settle the question."""

    question: str
    verdict: AnswerVerdict
    summary: str
    citations: list[Citation] = Field(default_factory=list)
    confidence: float = Field(ge=0, le=1)
    engine: str = Field(description="'offline', 'llm', or 'offline (LLM fallback: why)'.")
    considered: list[Citation] = Field(default_factory=list, description="Nearest clauses looked at, for abstentions.")
    notes: list[str] = Field(default_factory=list, description="Caveats: dropped LLM citations, language, disagreement.")


class Ruling(_Frozen):
    """What `judge` returns for a pasted message."""

    message: str
    verdict: RulingVerdict
    violations: list[Violation] = Field(default_factory=list)
    penalties: list[Citation] = Field(default_factory=list, description="What the rules say happens next.")
    confidence: float = Field(ge=0, le=1)
    engine: str
    summary: str = ""
    considered: list[Citation] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    second_opinion: Ruling | None = Field(None, description="The other engine's ruling when the two disagree.")


class GoldCitation(_Frozen):
    """An acceptable citation: a clause id, or a verbatim quote from a source file."""

    clause: str | None = None
    quote: str | None = None
    file: str | None = Field(None, description="Informational: the source file the quote came from.")
    audit: bool = Field(False, description="Added by the blind completeness audit (evals/authoring/audit/), "
                                           "not by the item's author; the report also scores the gold without them.")


class EvalItem(_Frozen):
    """One gold item of an evaluation dataset (see evals/README.md)."""

    id: str = Field(min_length=1)
    kind: Literal["question", "message"]
    text: str = Field(min_length=1)
    expected_verdict: Literal["prohibited", "allowed", "informational", "not_covered", "violation", "no_violation"]
    gold: list[GoldCitation] = Field(default_factory=list)
    note: str = ""
    lang: Literal["en", "zh"] = Field("en", description="The language the text is written in (zh: Chinese, any script).")
    product: str | None = Field(None, description="Where the content is posted or the question is about "
                                                  "(a key of corpus/products.toml); None: not said.")
