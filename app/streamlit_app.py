"""PolicyQA in a web page: ask, adjudicate, browse the policies and read the evaluation.

A front end only: every decision comes from the `policyqa` API. Pasted text is always shown as
escaped text; sources are always on screen.

Run: streamlit run app/streamlit_app.py
"""

from __future__ import annotations

import json
import re

import pandas as pd
import streamlit as st

import policyqa
from policyqa import PolicyQAError
from evaluation_page import page_evaluation
from policies_page import page_policies
from rendering import show_answer, show_ruling

PAGES = ("Ask", "Adjudicate", "Policies", "Evaluation")


# --- Shared resources -----------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the policy index and the embedding model (first load builds the index)…")
def load_index() -> policyqa.PolicyIndex:
    """One index and model per process, shared by every session (the index is thread-safe)."""
    return policyqa.open_index(build="missing")


@st.cache_data(ttl=60, show_spinner=False)
def engine_status() -> tuple[str, bool, str]:
    settings = policyqa.load_settings()
    if settings.engine != "llm":
        return "offline", True, "Offline engine: no network, no LLM."
    ok, message = policyqa.llm_status(settings)
    return f"LLM: {settings.llm_provider} · {settings.llm_model} @ {settings.llm_base_url or 'default URL'}", ok, message


def sidebar(index: policyqa.PolicyIndex) -> tuple[str, int, dict]:
    with st.sidebar:
        st.title("PolicyQA")
        requested = st.query_params.get("page", "Ask")
        page = st.radio("Page", PAGES, index=PAGES.index(requested) if requested in PAGES else 0, key="page_radio")
        if page != requested:
            st.query_params["page"] = page
            st.query_params.pop("clause", None)
        st.divider()
        label, ok, message = engine_status()
        st.caption("Engine")
        st.text(label)
        (st.success if ok else st.warning)(message, icon=":material/check_circle:" if ok else ":material/warning:")
        top_k = st.slider("Clauses shown per search", 3, 20, 8, key="top_k")
        context = posting_context(index)
        st.caption("Corpus and index")
        fingerprint = index.fingerprint
        st.text(f"corpus  {fingerprint.get('corpus', '?')[:12]}\nmodel   {fingerprint.get('model', '?').split('#')[-1][:12]}\n"
                f"built   {index.manifest.get('built_at', '?')}\nclauses {len(index.clauses)}")
    return page, top_k, context


def posting_context(index: policyqa.PolicyIndex) -> dict:
    """Where the content was posted (remembered for the session): the rules and penalties of the
    documents governing that product apply. The choices come from corpus/products.toml."""
    catalogue = index.catalogue
    products = [None, *catalogue.products]
    product = st.selectbox("Posted in", products, key="product",
                           format_func=lambda k: "Any product (show which each clause governs)" if k is None
                           else catalogue.products[k].name,
                           help="Citations and penalties come from the policies that govern this product.")
    surfaces = [None, *catalogue.surfaces]
    surface = st.selectbox("Where in it", surfaces, key="surface", disabled=product is None,
                           format_func=lambda k: "Not said" if k is None else catalogue.surfaces[k].name,
                           help="A group adds the group penalties.")
    return {"product": product, "surface": surface if product is not None else None}


# --- Pages ----------------------------------------------------------------------------------------


def page_ask(index: policyqa.PolicyIndex, context: dict) -> None:
    st.header("Ask")
    st.caption("Ask whether something is allowed. Every answer cites the clauses that decide it.")
    history = st.session_state.setdefault("ask_history", [])
    for i, (question, answer_json) in enumerate(history):
        with st.chat_message("user"):
            st.text(question)
        with st.chat_message("assistant"):
            show_answer(policyqa.Answer.model_validate_json(answer_json), key=f"ask-{i}")
    question = st.chat_input("e.g. Can a seller put a QR code to her group in her profile photo?", submit_mode="disable")
    if question:
        with st.chat_message("user"):
            st.text(question)
        with st.chat_message("assistant"):
            try:
                with st.spinner("Finding the clauses that decide this…"):
                    answer = policyqa.ask(question, product=context["product"], index=index)
            except PolicyQAError as exc:
                st.error(str(exc))
                return
            show_answer(answer, key=f"ask-{len(history)}")
        history.append((question, answer.model_dump_json()))


def page_adjudicate(index: policyqa.PolicyIndex, context: dict) -> None:
    st.header("Adjudicate")
    single, batch = st.tabs(["One message", "Batch"])
    with single:
        message = st.text_area("Paste the suspect message", height=140, key="judge_text")
        if st.button("Judge", type="primary", key="judge_button"):
            try:
                with st.spinner("Checking the message against every policy…"):
                    st.session_state["ruling"] = policyqa.judge(message, index=index, **context).model_dump_json()
            except PolicyQAError as exc:
                st.session_state.pop("ruling", None)
                st.error(str(exc))
        if "ruling" in st.session_state:
            show_ruling(policyqa.Ruling.model_validate_json(st.session_state["ruling"]), key="ruling")
    with batch:
        upload = st.file_uploader("Upload a CSV (columns id, text) or JSONL (id, text per line)", type=["csv", "jsonl"],
                                  key="batch_upload")
        if upload is not None and st.button("Judge all", key="batch_button"):
            try:
                rows = policyqa.read_rows(upload.getvalue(), upload.name)
            except PolicyQAError as exc:
                st.error(str(exc))
                rows = []
            if rows:
                bar = st.progress(0.0, text=f"0 of {len(rows)} messages")
                records = list(policyqa.run_rows(rows, lambda texts: policyqa.judge_many(texts, index=index, **context),
                                                 progress=lambda n, total: bar.progress(n / total, text=f"{n} of {total} messages")))
                st.session_state["batch_records"] = records
        records = st.session_state.get("batch_records")
        if records:
            table = pd.DataFrame([{
                "id": r["id"], "verdict": r.get("verdict", "error"), "confidence": r.get("confidence"),
                "clauses": ", ".join(v["clause_id"] for v in r.get("violations", [])),
                "message": r.get("message", ""), "error": r.get("error", ""),
            } for r in records])
            verdicts = st.multiselect("Verdict", sorted(table["verdict"].unique()), default=sorted(table["verdict"].unique()),
                                      key="batch_verdicts")
            clause_filter = st.text_input("Clause id contains", key="batch_clause")
            shown = table[table["verdict"].isin(verdicts) & table["clauses"].str.contains(re.escape(clause_filter), na=False)]
            st.dataframe(shown, hide_index=True, width="stretch")
            st.download_button("Download rulings (JSONL)", "\n".join(json.dumps(r, ensure_ascii=False) for r in records),
                               file_name="rulings.jsonl", mime="application/jsonl", key="batch_download")


def main() -> None:
    st.set_page_config(page_title="PolicyQA", page_icon="⚖️", layout="wide")
    try:
        index = load_index()
    except PolicyQAError as exc:
        st.error(f"The policy index cannot be used: {exc}")
        st.stop()
    page, top_k, context = sidebar(index)
    try:
        if page == "Ask":
            page_ask(index, context)
        elif page == "Adjudicate":
            page_adjudicate(index, context)
        elif page == "Policies":
            page_policies(index, top_k)
        else:
            page_evaluation(index)
    except PolicyQAError as exc:
        st.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - a user never sees a traceback
        st.error(f"Something went wrong ({type(exc).__name__}). Please try again; if it persists, report it.")


main()
