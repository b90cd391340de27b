"""The Policies page: browse each document by heading, search it, open a clause by link."""

from __future__ import annotations

import streamlit as st

import policyqa
from policyqa import PolicyQAError
from rendering import clause_link, escape


def page_policies(index: policyqa.PolicyIndex, top_k: int) -> None:
    st.header("Policies")
    clause_id = st.query_params.get("clause")
    if clause_id:
        show_clause_with_neighbours(index, clause_id)
        st.divider()
    query = st.text_input("Search the policies", key="policy_search")
    if query:
        try:
            for hit in index.search(query, top_k=top_k):
                st.markdown(f"{hit.rank}. [`{hit.clause.clause_id}`]({clause_link(hit.clause.clause_id)}) · "
                            f"{escape(' '.join(hit.clause.text.split())[:200])}")
        except PolicyQAError as exc:
            st.error(str(exc))
    documents = list(dict.fromkeys(c.document_title for c in index.clauses))
    chosen = st.selectbox("Browse a document", documents, key="policy_document")
    clauses = [c for c in index.clauses if c.document_title == chosen]
    sections: dict[str, list] = {}
    for clause in clauses:
        sections.setdefault(clause.heading_path[0] if clause.heading_path else "(preamble)", []).append(clause)
    for section, members in sections.items():
        with st.expander(f"{section} ({len(members)} clauses)"):
            for clause in members:
                st.markdown(f"[`{clause.clause_id}`]({clause_link(clause.clause_id)}) {escape(' '.join(clause.text.split())[:160])}")


def show_clause_with_neighbours(index: policyqa.PolicyIndex, clause_id: str) -> None:
    try:
        clause = index.clause(clause_id)
    except KeyError:
        st.error(f"No clause with id {clause_id!r}.")
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
        st.markdown(escape(clause.text))
        if clause.parent_text:
            st.caption(f"Under: {' '.join(clause.parent_text.split())[:300]}")
    for neighbour in after:
        st.caption(f"[{neighbour.clause_id}]({clause_link(neighbour.clause_id)})")
        st.markdown(f":gray[{escape(' '.join(neighbour.text.split()))}]")


