"""PolicyQA in a web page: ask, adjudicate, browse the policies and read the evaluation.

A front end only: every decision comes from the `policyqa` API. Pasted text is always shown as
escaped text; sources are always on screen.

Run: streamlit run app/streamlit_app.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import streamlit as st

import policyqa
from policyqa import PolicyQAError

PAGES = ("Ask", "Adjudicate", "Policies", "Evaluation")
VERDICT_COLOURS = {"prohibited": "red", "violation": "red", "allowed": "green", "no_violation": "green",
                   "informational": "blue", "not_covered": "orange", "needs_review": "orange"}
VERDICT_LABELS = {"prohibited": "Prohibited", "allowed": "Allowed", "informational": "Informational",
                  "not_covered": "Not covered", "violation": "Violation", "no_violation": "No violation",
                  "needs_review": "Needs review"}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def escape(text: str) -> str:
    """Markdown-escape text so that pasted or policy text renders as text, never as markup."""
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", "  \n")


def highlight(text: str, span: str, colour: str = "orange") -> str:
    """`text` escaped, with the first occurrence of `span` on a coloured background. Whitespace is
    collapsed first: a highlight cannot cross a line break."""
    text, span = " ".join(text.split()), " ".join(span.split())
    at = text.find(span) if span else -1
    if at < 0:
        return escape(text)
    return (escape(text[:at]) + f":{colour}-background[{escape(span)}]" + escape(text[at + len(span):]))


def clause_link(clause_id: str) -> str:
    return f"?page=Policies&clause={clause_id}"


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


# --- Showing answers --------------------------------------------------------------------------------


def verdict_badge(verdict: str, confidence: float, engine: str) -> None:
    st.badge(f"{VERDICT_LABELS.get(verdict, verdict)} · confidence {confidence:.2f}", color=VERDICT_COLOURS.get(verdict, "gray"))
    st.caption(f"engine: {engine}")


def show_citation(citation, *, key: str, span_of_message: str | None = None, message: str | None = None) -> None:
    """Document, clause id, heading path, the clause text with its quote highlighted, score and link."""
    with st.container(border=True):
        st.markdown(f"**{escape(citation.document)}** · `{citation.clause_id}` · [open in Policies]({clause_link(citation.clause_id)})")
        governs = f" · governs {', '.join(citation.products)}" if citation.products else ""
        st.caption(f"{citation.heading_path or '(top level)'} · score {citation.score:.3f} · stance {citation.stance}{governs}")
        st.markdown(highlight(citation.text, citation.quote))
        if span_of_message is not None and message is not None:
            st.caption("Offending part of the message:")
            st.markdown(highlight(message, span_of_message, "red"))
        reason = getattr(citation, "reason", None) or citation.applies_because
        if reason:
            st.caption(f"Why: {reason}")


def show_considered(result, key: str) -> None:
    if result.considered:
        st.caption("Nearest clauses considered:")
        for i, citation in enumerate(result.considered):
            show_citation(citation, key=f"{key}-considered-{i}")


def show_answer(answer: policyqa.Answer, key: str) -> None:
    verdict_badge(answer.verdict, answer.confidence, answer.engine)
    st.markdown(escape(answer.summary))
    for note in answer.notes:
        st.caption(f"Note: {note}")
    if answer.citations:
        st.caption("Sources:")
        for i, citation in enumerate(answer.citations):
            show_citation(citation, key=f"{key}-{i}")
    else:
        st.info("No clause settles this question." if answer.verdict == "not_covered" else "No source cited.")
        show_considered(answer, key)


def show_ruling(ruling: policyqa.Ruling, key: str) -> None:
    verdict_badge(ruling.verdict, ruling.confidence, ruling.engine)
    st.markdown(escape(ruling.summary))
    for note in ruling.notes:
        st.caption(f"Note: {note}")
    for i, violation in enumerate(ruling.violations):
        show_citation(violation, key=f"{key}-v{i}", span_of_message=violation.message_span, message=ruling.message)
    if ruling.penalties:
        st.subheader("Penalties the rules set")
        for i, penalty in enumerate(ruling.penalties):
            show_citation(penalty, key=f"{key}-p{i}")
    if not ruling.violations:
        if ruling.verdict == "needs_review":
            st.warning("A person should decide: the evidence is too weak or mixed for a ruling.")
        show_considered(ruling, key)
    if ruling.second_opinion is not None:
        with st.expander("The other engine's view"):
            show_ruling(ruling.second_opinion, key=f"{key}-second")


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


def report_folders(settings: policyqa.Settings) -> list[Path]:
    roots = [settings.home / "reports", Path(__file__).resolve().parents[1] / "evals" / "reports"]
    found = [p.parent for root in roots if root.is_dir() for p in root.glob("*/report.json")]
    return sorted(found, key=lambda p: (p / "report.json").stat().st_mtime, reverse=True)


def page_evaluation(index: policyqa.PolicyIndex) -> None:
    st.header("Evaluation")
    settings = policyqa.load_settings()
    split = st.segmented_control("Split", ["dev", "test"], default="test", key="eval_split") or "test"
    if st.button("Run the benchmark", key="eval_run"):
        bar = st.progress(0.0, text="Starting…")

        def progress(stage: str, done: int, total: int) -> None:
            bar.progress(done / max(total, 1), text=f"{'Building the baseline' if stage == 'baseline' else 'Evaluating items'}: {done} of {total}")

        try:
            policyqa.evaluate(split=split, index=index, out_dir=settings.home / "reports" / f"{split}-app", progress=progress)
            st.success("Done; the report is shown below.")
        except PolicyQAError as exc:
            st.error(str(exc))
    folders = report_folders(settings)
    if not folders:
        st.info("No report yet: run the benchmark above.")
        return
    folder = st.selectbox("Report", folders, format_func=lambda p: str(p.name), key="eval_report")
    try:
        report = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError) as exc:
        st.error(f"Cannot read {folder / 'report.json'}: {exc}")
        return
    st.caption(f"{report['items']} items · split {report.get('split') or 'custom'} · engine {report['engine']}")
    rows = []
    for group in ("retrieval", "citations"):
        names = list(report[group].get("PolicyQA", {}))
        for name in names:
            row = {"metric": name}
            for system, metrics in report[group].items():
                metric = metrics.get(name)
                row[system] = None if metric is None else metric["value"]
            rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    verdicts = report["verdicts"]
    st.dataframe(pd.DataFrame([{"metric": name, **{s: verdicts[s][name]["value"] for s in verdicts}}
                               for name in ("accuracy", "benign false-positive rate", "abstention rate on not_covered items",
                                            "needs_review rate", "confidently wrong rate")]), hide_index=True, width="stretch")
    columns = st.columns(2)
    for i, name in enumerate(("baselines.png", "hit_at_k.png", "confusion.png", "sections.png")):
        if (folder / name).is_file():
            columns[i % 2].image(str(folder / name))
    failures_path = folder / "failures.jsonl"
    if failures_path.is_file():
        failures = [json.loads(line) for line in failures_path.read_text().splitlines() if line.strip()]
        st.subheader(f"Misses ({len(failures)})")
        st.dataframe(pd.DataFrame([{k: f.get(k) for k in ("id", "expected_verdict", "returned_verdict", "citations_ok", "text")}
                                   for f in failures]), hide_index=True, width="stretch")


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
