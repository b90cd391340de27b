"""The Evaluation page: run the benchmark with a progress bar, or read a report."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

import policyqa
from policyqa import PolicyQAError


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


