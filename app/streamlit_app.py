"""PolicyQA in a web page: ask, adjudicate, review, browse the policies and read the evaluation.

A front end only: every decision comes from the `policyqa` API. Pasted text is always shown as
escaped text; sources are always on screen.

Run: streamlit run app/streamlit_app.py
"""

from __future__ import annotations

import streamlit as st

import policyqa
from policyqa import PolicyQAError
from decisions import decision_form
from evaluation_page import page_evaluation
from policies_page import page_policies
from rendering import VERDICT_LABELS, literal, show_answer, show_ruling
from batch_view import batch_table, filtered, shown_csv, shown_jsonl
from review_page import page_review

PAGES = ("Ask", "Adjudicate", "Review", "Policies", "Evaluation")
EXAMPLE_QUESTIONS = (
    "Can a seller put a QR code to her group in her profile photo?",
    "Can my shop run a lucky draw where people share to Moments to enter?",
    "What happens to a WeCom account that sends harassing ads?",
    "Can I post photos of myself breastfeeding my newborn?",
)
HISTORY_SHOWN = 10  # Ask answers shown from the store on a fresh page (older ones stay in the audit trail)


# --- Shared resources -----------------------------------------------------------------------------


@st.cache_resource(show_spinner="Loading the policy index and the embedding model (first load builds the index)…")
def load_index() -> policyqa.PolicyIndex:
    """One index and model per process, shared by every session (the index is thread-safe)."""
    return policyqa.open_index(build="missing")


@st.cache_resource(show_spinner=False)
def load_store() -> policyqa.Store:
    """The decisions and audit store (SQLite under POLICYQA_HOME, or POLICYQA_DATABASE_URL)."""
    return policyqa.open_store(policyqa.load_settings())


def record(index: policyqa.PolicyIndex, kind: str, results: list, context: dict, *, batch_id: str | None = None,
           row_ids: list | None = None) -> list[dict]:
    """Log results to the audit trail; per result its record id and stamp ({} each when the store fails:
    the answer is still shown, with a warning)."""
    try:
        log = policyqa.audit_recorder(load_store(), kind, index, source="app", batch_id=batch_id, **(
            {"product": context["product"]} if kind == "ask" else context))
        return log(results, row_ids or [None] * len(results))
    except PolicyQAError as exc:
        st.warning(literal(f"Not recorded in the audit trail: {exc}"))
        return [{} for _ in results]


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
        # Back, Forward and clause links change the URL but not the radio's state, which would then
        # push its old page back into the URL: a page in the URL this session has not seen wins.
        if requested != st.session_state.get("url_page"):
            st.session_state["page_radio"] = requested if requested in PAGES else PAGES[0]
        page = st.radio("Page", PAGES, key="page_radio")
        if page != requested:
            st.query_params["page"] = page
            st.query_params.pop("clause", None)
            st.query_params.pop("quote", None)
        st.session_state["url_page"] = page
        st.divider()
        label, ok, message = engine_status()
        st.caption("Engine")
        st.text(label)
        (st.success if ok else st.warning)(literal(message), icon=":material/check_circle:" if ok else ":material/warning:")
        if "reviewer" not in st.session_state:
            st.session_state["reviewer"] = policyqa.default_reviewer()
        st.text_input("Reviewer", key="reviewer", help="Who records decisions in this browser tab (kept in the audit trail).")
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
    store = load_store()
    try:
        history = store.history("ask", source="app", limit=HISTORY_SHOWN)
    except PolicyQAError as exc:
        st.warning(literal(f"History is unavailable: {exc}"))
        history = []
    for audit, answer in history:
        with st.chat_message("user"):
            st.text(audit.input_text)
        with st.chat_message("assistant"):
            show_answer(answer, key=f"ask-{audit.record_id}")
            decision_form(store, index, audit.record_id, "ask", answer, key=audit.record_id)
    question = (st.chat_input("e.g. Can a seller put a QR code to her group in her profile photo?", submit_mode="disable")
                or st.session_state.pop("example_question", None))
    if not history and not question:
        st.caption("Try one of these:")
        for n, example in enumerate(EXAMPLE_QUESTIONS):  # a click sets the question before the page reruns
            st.button(example, key=f"example-{n}", type="tertiary", icon=":material/help:",
                      on_click=st.session_state.__setitem__, args=("example_question", example))
    if question:
        with st.chat_message("user"):
            st.text(question)
        with st.chat_message("assistant"):
            try:
                with st.spinner("Finding the clauses that decide this…"):
                    answer = policyqa.ask(question, product=context["product"], index=index)
            except PolicyQAError as exc:
                st.error(literal(str(exc)))
                return
            stamp = record(index, "ask", [answer], context)[0]
            show_answer(answer, key="ask-new")
            decision_form(store, index, stamp.get("record_id"), "ask", answer, key=f"new-{stamp.get('record_id')}")


def page_adjudicate(index: policyqa.PolicyIndex, context: dict) -> None:
    st.header("Adjudicate")
    single, batch = st.tabs(["One message", "Batch"])
    with single:
        judge_one(index, context)
    with batch:
        judge_batch(index, context)


def judge_one(index: policyqa.PolicyIndex, context: dict) -> None:
    """One message. The ruling on screen is always for the text in the box: edit it and the old
    ruling goes until the new one is made (Judge, or Ctrl+Enter)."""
    message = st.text_area("Paste the suspect message", height=140, key="judge_text",
                           placeholder="Paste the message here; Ctrl+Enter (⌘+Enter) judges it.")
    if st.button("Judge", type="primary", key="judge_button", shortcut="Ctrl+Enter"):
        try:
            with st.spinner("Checking the message against every policy…"):
                ruling = policyqa.judge(message, index=index, **context)
            stamp = record(index, "judge", [ruling], context)[0]
            st.session_state["ruling"] = {"for": message, "json": ruling.model_dump_json(), "record_id": stamp.get("record_id")}
        except PolicyQAError as exc:
            st.session_state.pop("ruling", None)
            st.error(literal(str(exc)))
    made = st.session_state.get("ruling")
    if made and made["for"] != message:
        st.info("The message changed: press Judge (Ctrl+Enter) to rule on it.", icon=":material/edit:")
    elif made:
        ruling = policyqa.Ruling.model_validate_json(made["json"])
        show_ruling(ruling, key="ruling")
        decision_form(load_store(), index, made["record_id"], "judge", ruling, key=f"one-{made['record_id']}",
                      expanded=ruling.verdict == "needs_review")


def judge_batch(index: policyqa.PolicyIndex, context: dict) -> None:
    upload = st.file_uploader("Upload a CSV (columns id, text) or JSONL (id, text per line)", type=["csv", "jsonl"],
                              key="batch_upload")
    if upload is not None and st.button("Judge all", key="batch_button"):
        try:
            rows = policyqa.read_rows(upload.getvalue(), upload.name)
        except PolicyQAError as exc:
            st.error(literal(str(exc)))
            rows = []
        if rows:
            bar = st.progress(0.0, text=f"0 of {len(rows)} messages")
            try:
                log = policyqa.audit_recorder(load_store(), "judge", index, source="app",
                                              batch_id=policyqa.new_batch_id(upload.name), **context)
            except PolicyQAError as exc:
                st.warning(literal(f"Not recorded in the audit trail: {exc}"))
                log = None
            records = list(policyqa.run_rows(rows, lambda texts: policyqa.judge_many(texts, index=index, **context),
                                             progress=lambda n, total: bar.progress(n / total, text=f"{n} of {total} messages"),
                                             record=log))
            st.session_state["batch_records"] = records
    records = st.session_state.get("batch_records")
    if not records:
        return
    table = batch_table(records)
    tally = table["verdict"].value_counts()
    st.caption(" · ".join(f"{VERDICT_LABELS.get(v, v)} {n}" for v, n in tally.items()))
    verdicts = st.multiselect("Verdict", sorted(table["verdict"].unique()), default=sorted(table["verdict"].unique()),
                              key="batch_verdicts", format_func=lambda v: VERDICT_LABELS.get(v, v))
    clause_filter = st.text_input("Clause id contains", key="batch_clause")
    shown = filtered(table, verdicts, clause_filter)
    picked = st.dataframe(
        shown, hide_index=True, width="stretch", key="batch_table", on_select="rerun", selection_mode="single-row",
        column_order=["id", "verdict", "confidence", "first clause", "clauses", "message", "error"],
        column_config={
            "confidence": st.column_config.NumberColumn("confidence", format="%.2f"),
            "first clause": st.column_config.LinkColumn("first clause", display_text=r"clause=([^&]+)",
                                                        help="Opens the clause in Policies"),
        })
    st.caption(f"{len(shown)} of {len(table)} rows shown. Select a row to open its full ruling.")
    chosen = [records[i] for i in shown.index]
    left, right = st.columns(2)
    left.download_button("Download shown rows (JSONL)", shown_jsonl(chosen),
                         file_name="rulings.jsonl", mime="application/jsonl", key="batch_download")
    right.download_button("Download shown rows (CSV)", shown_csv(shown),
                          file_name="rulings.csv", mime="text/csv", key="batch_download_csv")
    selected = picked.selection.rows if picked and picked.selection else []
    opened = st.selectbox("Open a row", [None, *range(len(shown))], index=selected[0] + 1 if selected else 0,
                          format_func=lambda n: "Choose a row, or select one in the table" if n is None else
                          f"{shown.iloc[n]['id']} · {VERDICT_LABELS.get(shown.iloc[n]['verdict'], shown.iloc[n]['verdict'])}")
    if opened is not None:
        row = records[shown.index[opened]]
        st.subheader(f"Row {literal(str(row['id']))}")
        if "error" in row:
            st.error(literal(row["error"]))
        else:
            fields = {k: v for k, v in row.items() if k in policyqa.Ruling.model_fields}
            ruling = policyqa.Ruling.model_validate(fields)
            show_ruling(ruling, key=f"batch-{row['id']}")
            decision_form(load_store(), index, row.get("record_id"), "judge", ruling, key=f"batch-{row.get('record_id')}")


def main() -> None:
    st.set_page_config(page_title="PolicyQA", page_icon="⚖️", layout="wide")
    try:
        index = load_index()
    except PolicyQAError as exc:
        st.error(literal(f"The policy index cannot be used: {exc}"))
        st.stop()
    page, top_k, context = sidebar(index)
    try:
        if page == "Ask":
            page_ask(index, context)
        elif page == "Adjudicate":
            page_adjudicate(index, context)
        elif page == "Review":
            page_review(index, load_store())
        elif page == "Policies":
            page_policies(index, top_k)
        else:
            page_evaluation(index)
    except PolicyQAError as exc:
        st.error(literal(str(exc)))
    except Exception as exc:  # noqa: BLE001 - a user never sees a traceback
        st.error(f"Something went wrong ({type(exc).__name__}). Please try again; if it persists, report it.")


main()
