"""The Review page: rulings that need review, oldest first, resolved one by one from the keyboard.

V records a violation (with the clauses chosen), N no violation, S skips to the next; every
decision goes to the store with the reviewer's name. Batches and single rulings both land here."""

from __future__ import annotations

import streamlit as st

import policyqa
from decisions import record_decision
from rendering import by_score, literal, show_ruling, show_text

SOURCES = (None, "app", "cli", "api", "batch")
QUEUE_LIMIT = 500
"""Waiting rulings fetched per page view: the first of them not skipped in this session is shown
(the count above it is the store's, not this list's)."""


def queue_filters(index: policyqa.PolicyIndex) -> dict:
    columns = st.columns(4)
    source = columns[0].selectbox("Made in", SOURCES, key="review_source",
                                  format_func=lambda s: "Anywhere" if s is None else s)
    products = [None, *index.catalogue.products]
    product = columns[1].selectbox("Posted in", products, key="review_product",
                                   format_func=lambda p: "Any product" if p is None else index.catalogue.products[p].name)
    batch_id = columns[2].text_input("Batch id", key="review_batch").strip() or None
    contains = columns[3].text_input("Message contains", key="review_contains").strip() or None
    return {"source": source, "product": product, "batch_id": batch_id, "contains": contains}


def page_review(index: policyqa.PolicyIndex, store: policyqa.Store) -> None:
    st.header("Review queue")
    st.caption("Rulings that need a person, oldest first. Keys: **V** violation, **N** no violation, **S** skip.")
    filters = queue_filters(index)
    skipped: set[str] = st.session_state.setdefault("review_skipped", set())
    try:
        pending = store.queue(**filters, limit=QUEUE_LIMIT)
    except policyqa.PolicyQAError as exc:
        st.error(literal(str(exc)))
        return
    waiting = [r for r in pending if r.record_id not in skipped] or pending
    if not pending:
        st.success("Nothing waits for review with these filters.", icon=":material/task_alt:")
        if skipped:
            skipped.clear()
        return
    record = waiting[0]
    st.subheader(f"1 of {store.queue_size(**filters)} waiting")
    where = " · ".join(x for x in (f"batch {record.batch_id} row {record.row_id}" if record.batch_id else "",
                                   f"posted in {record.product}" if record.product else "") if x)
    st.caption(f"Ruled {record.created_at:%Y-%m-%d %H:%M} UTC · from {record.source}"
               + (f" · {where}" if where else "") + f" · record {record.record_id}")
    ruling = store.result_of(record.record_id)
    if ruling is None:
        st.warning(f"The text was not kept (audit_keeps_text is off); SHA-256 {record.input_sha256}.")
    else:
        with st.container(border=True):
            show_text(record.input_text or "")
        show_ruling(ruling, key=f"review-{record.record_id}")
    nearest = [c.clause_id for c in by_score(getattr(ruling, "considered", []))]
    options = list(dict.fromkeys([*nearest, *(c.clause_id for c in index.clauses)]))
    clause_ids = st.multiselect("Clauses that decide it (for a violation)", options, key=f"review-clauses-{record.record_id}",
                                placeholder=f"e.g. {nearest[0]}" if nearest else "Choose clauses")
    note = st.text_input("Note", key=f"review-note-{record.record_id}")
    buttons = st.columns(3)
    if buttons[0].button("Violation", key="review-violation", shortcut="V", type="primary", icon=":material/block:"):
        if record_decision(store, index, record.record_id, "violation", clause_ids, note):
            st.rerun()
    if buttons[1].button("No violation", key="review-ok", shortcut="N", icon=":material/check:"):
        if record_decision(store, index, record.record_id, "no_violation", clause_ids, note):
            st.rerun()
    if buttons[2].button("Skip", key="review-skip", shortcut="S", icon=":material/skip_next:"):
        skipped.add(record.record_id)
        st.rerun()
