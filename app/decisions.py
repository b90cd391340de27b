"""A reviewer's decision on an answer or ruling: agree, or give the right verdict, the clauses that
decide it and a note. The store checks the decision; this module only draws the form."""

from __future__ import annotations

import streamlit as st

import policyqa
from policyqa import PolicyQAError
from rendering import VERDICT_LABELS, by_score, literal


def reviewer_name() -> str:
    return (st.session_state.get("reviewer") or "").strip()


def decision_form(store: policyqa.Store, index: policyqa.PolicyIndex, record_id: str | None, kind: str, result, *,
                  key: str, expanded: bool = False) -> None:
    """The decision form under a result, and the decision already recorded on it."""
    if record_id is None:
        return
    try:
        decided = store.get(record_id).decision
    except PolicyQAError as exc:
        st.caption(literal(f"Decisions are unavailable: {exc}"))
        return
    if decided is not None:
        st.success(f"Decided: {VERDICT_LABELS.get(decided.verdict, decided.verdict)}"
                   f"{' (agreed)' if decided.agreed else ''} by {literal(decided.reviewer)} on {decided.decided_at:%Y-%m-%d %H:%M} UTC"
                   + (f" · {', '.join(decided.clause_ids)}" if decided.clause_ids else ""), icon=":material/gavel:")
    with st.expander("Record a decision" if decided is None else "Change the decision", expanded=expanded and decided is None):
        with st.form(key=f"decide-{key}", border=False):
            choices = ["agree", *policyqa.DECIDABLE_VERDICTS[kind]]
            if result is not None and result.verdict not in policyqa.DECIDABLE_VERDICTS[kind]:
                choices.remove("agree")  # "needs review" cannot be agreed with: it asks for a verdict
            choice = st.radio("Decision", choices, horizontal=True, key=f"decide-verdict-{key}",
                              format_func=lambda v: "Agree" if v == "agree" else VERDICT_LABELS.get(v, v))
            cited = policyqa.cited_clause_ids(result) if result is not None else []
            suggested = cited or [c.clause_id for c in by_score(getattr(result, "considered", []))[:1]]
            clause_ids = st.multiselect("Clauses that decide it (needed for Violation and Prohibited)",
                                        [c.clause_id for c in index.clauses], default=cited,
                                        key=f"decide-clauses-{key}", placeholder=f"e.g. {suggested[0]}" if suggested else "Choose clauses")
            note = st.text_input("Note", key=f"decide-note-{key}")
            submitted = st.form_submit_button("Record decision", type="primary")
        if submitted and record_decision(store, index, record_id, choice, clause_ids, note):
            st.rerun()  # redraw with the decision shown above the form


def record_decision(store: policyqa.Store, index: policyqa.PolicyIndex, record_id: str, choice: str,
                    clause_ids: list[str], note: str) -> bool:
    if not reviewer_name():
        st.error("Enter your name under Reviewer in the sidebar first: every decision says who made it.")
        return False
    try:
        store.decide(record_id, reviewer=reviewer_name(), agree=choice == "agree",
                     verdict=None if choice == "agree" else choice, clause_ids=clause_ids, note=note, source="app",
                     known_clause_ids={c.clause_id for c in index.clauses})
    except PolicyQAError as exc:
        st.error(literal(str(exc)))
        return False
    st.toast("Decision recorded.")
    return True
