"""The Policies page: browse each document by heading, search it, open a clause by link."""

from __future__ import annotations

import streamlit as st

import policyqa
from policyqa import Clause, PolicyQAError
from rendering import clause_link, escape, highlight, literal

PREVIEW_CHARS = 160
"""A clause in a list shows this many characters of its text at most."""


def count_label(count: int, noun: str) -> str:
    """'1 clause', '2 clauses'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The start of a clause, whitespace collapsed, cut at a word boundary with an ellipsis.

    Chinese has no spaces between words and a cut between two characters is a boundary: when the last
    space is in the first half of the cut (or there is none), the cut falls at a character."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if text[limit] != " " and space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:、，；：") + "…"


def heading_tree(clauses: list[Clause]) -> dict[str, list[tuple[tuple[str, ...], list[Clause]]]]:
    """The clauses of one document under their headings, in document order: top-level heading ->
    [(the headings below it, the clauses directly under them)]. A flat list of the 166 clauses of
    "II. Content Rules" could not be read (issue 12)."""
    groups: dict[tuple[str, ...], list[Clause]] = {}
    for clause in clauses:
        groups.setdefault(clause.heading_path or ("(preamble)",), []).append(clause)
    tree: dict[str, list[tuple[tuple[str, ...], list[Clause]]]] = {}
    for path, members in groups.items():
        tree.setdefault(path[0], []).append((path[1:], members))
    return tree


def page_policies(index: policyqa.PolicyIndex, top_k: int) -> None:
    st.header("Policies")
    clause_id = st.query_params.get("clause")
    if clause_id:
        show_clause_with_neighbours(index, clause_id, quote=st.query_params.get("quote"))
        st.divider()
    query = st.text_input("Search the policies", key="policy_search")
    if query:
        try:
            for hit in index.search(query, top_k=top_k):
                clause = hit.clause
                st.markdown(f"{hit.rank}. [`{clause.clause_id}`]({clause_link(clause.clause_id)}) · "
                            f"**{escape(clause.document_title)}** › {escape(clause.heading or '(top level)')}  \n"
                            f"{escape(preview(clause.text, 200))}")
        except PolicyQAError as exc:
            st.error(str(exc))
    documents = list(dict.fromkeys(c.document_title for c in index.clauses))
    chosen = st.selectbox("Browse a document", documents, key="policy_document")
    show_document(heading_tree([c for c in index.clauses if c.document_title == chosen]))


def show_document(tree: dict[str, list[tuple[tuple[str, ...], list[Clause]]]]) -> None:
    """One expander per top-level heading (Streamlit cannot nest them); the headings below it as
    smaller headings, each with its clauses."""
    for top, groups in tree.items():
        with st.expander(f"{top} ({count_label(sum(len(members) for _, members in groups), 'clause')})"):
            shown: tuple[str, ...] = ()
            for path, members in groups:
                for depth, heading in enumerate(path, start=1):
                    if shown[:depth] != path[:depth]:
                        count = f" · {count_label(len(members), 'clause')}" if depth == len(path) else ""
                        st.markdown(f"{'#' * min(depth + 3, 6)} {escape(heading)}{count}")
                shown = path
                st.markdown("\n".join(f"- [`{c.clause_id}`]({clause_link(c.clause_id)}) {escape(preview(c.text))}"
                                      for c in members))


def show_clause_with_neighbours(index: policyqa.PolicyIndex, clause_id: str, quote: str | None = None) -> None:
    """The clause with the two before and after it; a citation's link passes its quote, highlighted here."""
    try:
        clause = index.clause(clause_id)
    except KeyError:
        st.error(literal(f"No clause with id {clause_id!r}."))  # from the address bar: shown as typed
        return
    position = next(i for i, c in enumerate(index.clauses) if c.clause_id == clause_id)
    st.subheader(clause.clause_id)
    st.caption(f"{clause.document_title} > {clause.heading or '(top level)'} · stance {clause.stance}")
    before = [c for c in index.clauses[max(0, position - 2):position] if c.document_id == clause.document_id]
    after = [c for c in index.clauses[position + 1:position + 3] if c.document_id == clause.document_id]
    for neighbour in before:
        st.caption(f"[{neighbour.clause_id}]({clause_link(neighbour.clause_id)})")
        st.markdown(f":gray[{escape(' '.join(neighbour.text.split()))}]")
    with st.container(border=True):
        st.markdown(highlight(clause.text, quote) if quote else escape(clause.text))
        if clause.parent_text:
            st.caption(f"Under: {' '.join(clause.parent_text.split())[:300]}")
    for neighbour in after:
        st.caption(f"[{neighbour.clause_id}]({clause_link(neighbour.clause_id)})")
        st.markdown(f":gray[{escape(' '.join(neighbour.text.split()))}]")
