"""How answers, rulings and citations are drawn: shared by every page.

Two kinds of text, two ways to draw them. Policy text (clauses, headings: our corpus) is markdown,
escaped. Text from a message, an LLM, an exception or the address bar is untrusted: it is drawn by
`show_text` as HTML-escaped text, which no markdown, link, image or tag survives, because escaping
markdown is not enough: GFM still turns an escaped "http://x", "www.x" or "a@b.c" into a live link
(checked in Chromium). `literal` is for the few places only markdown goes (alerts).
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote as url_quote

import streamlit as st

import policyqa

VERDICT_COLOURS = {"prohibited": "red", "violation": "red", "allowed": "green", "no_violation": "green",
                   "informational": "blue", "not_covered": "orange", "needs_review": "orange"}
VERDICT_LABELS = {"prohibited": "Prohibited", "allowed": "Allowed", "informational": "Informational",
                  "not_covered": "Not covered", "violation": "Violation", "no_violation": "No violation",
                  "needs_review": "Needs review"}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape(text: str) -> str:
    """Markdown-escape text so that pasted or policy text renders as text, never as markup."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", "  \n")


_AUTOLINK = re.compile(r"(?i)(https?|ftp|mailto|www)(?=[:.])|(?=@)")


def literal(text: str) -> str:
    """Markdown that shows `text` as typed, for st.error and the like: specials escaped, and a word
    joiner (U+2060, invisible) after "http"/"www" and before "@" so no autolink forms."""
    return escape(_AUTOLINK.sub(lambda m: (m.group(1) or "") + "\u2060", text))


MUTED = "color: rgba(49, 51, 63, 0.6); font-size: 0.875rem;"
MARKS = {"red": "rgba(255, 43, 43, 0.18)", "orange": "rgba(255, 164, 33, 0.22)"}


def text_html(text: str, span: str | None = None, colour: str = "red") -> str:
    """`text` as escaped HTML, whitespace kept, with the first occurrence of `span` marked."""
    at = text.find(span) if span else -1
    if at < 0:
        return html.escape(text)
    return (html.escape(text[:at]) + f'<mark style="background: {MARKS.get(colour, colour)}; color: inherit;">'
            + html.escape(span) + "</mark>" + html.escape(text[at + len(span):]))


def show_text(text: str, *, span: str | None = None, colour: str = "red", muted: bool = False, prefix: str = "") -> None:
    """Untrusted text drawn as plain text (optionally with `span` marked): see the module docstring."""
    style = "white-space: pre-wrap; overflow-wrap: anywhere;" + (MUTED if muted else "")
    st.html(f'<div class="policyqa-text" style="{style}">{html.escape(prefix)}{text_html(text, span, colour)}</div>')


def highlight(text: str, span: str, colour: str = "orange") -> str:
    """`text` escaped, with the first occurrence of `span` on a coloured background. Whitespace is
    collapsed first: a highlight cannot cross a line break."""
    text, span = " ".join(text.split()), " ".join(span.split())
    at = text.find(span) if span else -1
    if at < 0:
        return escape(text)
    return (escape(text[:at]) + f":{colour}-background[{escape(span)}]" + escape(text[at + len(span):]))


def clause_link(clause_id: str, quote: str | None = None) -> str:
    """The Policies page opened at a clause; with `quote`, the cited words are highlighted there."""
    link = f"?page=Policies&clause={url_quote(clause_id, safe='/')}"
    return link + (f"&quote={url_quote(' '.join(quote.split())[:500], safe='')}" if quote else "")


SCORE_HELP = ("Score: how close retrieval put the clause to your text (cosine similarity of their embeddings; "
              "higher is closer, about 0.3-0.8 in practice). It is not the verdict's confidence.")
STANCE_HELP = {
    "prohibits": "the clause forbids something", "permits": "the clause allows something",
    "exception": "the clause makes an exception to a rule", "penalty": "the clause says what happens to a breach",
    "procedure": "the clause describes a process (appeals, reports)", "definition": "the clause defines a term",
    "context": "the text states no rule (introduction, background)",
}
"""What each stance (a clause's role, set when the corpus is parsed) means, for the citation captions."""


def citation_caption(citation) -> tuple[str, str]:
    """The caption under a citation's heading and the tooltip explaining its score and stance."""
    governs = f" · governs {', '.join(citation.products)}" if citation.products else ""
    meaning = STANCE_HELP.get(citation.stance, "")
    caption = (f"{citation.heading_path or '(top level)'} · score {citation.score:.2f} · "
               f"stance {citation.stance}{f' ({meaning})' if meaning else ''}{governs}")
    return caption, SCORE_HELP + " Stance: what the clause does in its policy."


def verdict_badge(verdict: str, confidence: float, engine: str) -> None:
    st.badge(f"{VERDICT_LABELS.get(verdict, verdict)} · confidence {confidence:.2f}", color=VERDICT_COLOURS.get(verdict, "gray"))
    show_text(engine, prefix="engine: ", muted=True)  # may carry an LLM endpoint's error text


def show_citation(citation, *, key: str, span_of_message: str | None = None, message: str | None = None) -> None:
    """Document, clause id, heading path, the clause text with its quote highlighted, score and link."""
    with st.container(border=True):
        st.markdown(f"**{escape(citation.document)}** · `{citation.clause_id}` · "
                    f"[open in Policies]({clause_link(citation.clause_id, citation.quote)})")
        caption, explanation = citation_caption(citation)
        st.caption(caption, help=explanation)
        st.markdown(highlight(citation.text, citation.quote))
        if span_of_message is not None and message is not None:
            st.caption("Offending part of the message:")
            show_text(message, span=span_of_message, colour="red")
        reason = getattr(citation, "reason", None) or citation.applies_because
        if reason:
            show_text(reason, prefix="Why: ", muted=True)


def by_score(citations: list) -> list:
    """Citations closest first (an engine may list them in another order, e.g. by document)."""
    return sorted(citations, key=lambda c: c.score, reverse=True)


def show_considered(result, key: str) -> None:
    if result.considered:
        st.caption("Nearest clauses considered, closest first:")
        for i, citation in enumerate(by_score(result.considered)):
            show_citation(citation, key=f"{key}-considered-{i}")


def show_answer(answer: policyqa.Answer, key: str) -> None:
    verdict_badge(answer.verdict, answer.confidence, answer.engine)
    show_text(answer.summary)
    for note in answer.notes:
        show_text(note, prefix="Note: ", muted=True)
    if answer.citations:
        st.caption("Sources:")
        for i, citation in enumerate(answer.citations):
            show_citation(citation, key=f"{key}-{i}")
    else:
        st.info("No clause settles this question." if answer.verdict == "not_covered" else "No source cited.")
        show_considered(answer, key)


def show_ruling(ruling: policyqa.Ruling, key: str) -> None:
    verdict_badge(ruling.verdict, ruling.confidence, ruling.engine)
    # The summary gives the reason once; a needs-review summary already says a person decides.
    if ruling.verdict == "needs_review":
        st.warning(literal(ruling.summary), icon=":material/person_search:")
    else:
        show_text(ruling.summary)
    for note in ruling.notes:
        show_text(note, prefix="Note: ", muted=True)
    for i, violation in enumerate(ruling.violations):
        show_citation(violation, key=f"{key}-v{i}", span_of_message=violation.message_span, message=ruling.message)
    if ruling.penalties:
        st.subheader("Penalties the rules set")
        for i, penalty in enumerate(ruling.penalties):
            show_citation(penalty, key=f"{key}-p{i}")
    if not ruling.violations:
        show_considered(ruling, key)
    if ruling.second_opinion is not None:
        with st.expander("The other engine's view"):
            show_ruling(ruling.second_opinion, key=f"{key}-second")


