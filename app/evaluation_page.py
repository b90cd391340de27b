"""The Evaluation page: run the benchmark with a progress bar, or read a report."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import streamlit as st

import policyqa
from policyqa import PolicyQAError
from rendering import literal

STAGES = {"baseline": "Building the llama-index baseline", "items": "Evaluating items",
          "metrics": "Computing the metrics and their intervals", "report": "Writing the report and plots"}
REVIEWED = "reviewed"
VERDICT_METRICS = ("accuracy", "benign false-positive rate", "abstention rate on not_covered items",
                   "needs_review rate", "confidently wrong rate")


def duration(seconds: float) -> str:
    """'42 s' or '3 min 05 s'."""
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def progress_text(stage: str, done: int, total: int, elapsed: float) -> str:
    """The progress bar's words: what is happening, how far along, and, while items are evaluated,
    the time spent and a remaining-time estimate from the pace so far (elapsed: seconds in this stage).
    When the metrics are done the report is being written, which the library does not count."""
    if stage == "metrics" and done >= total or stage == "report":
        return f"{STAGES['report']}…"
    text = f"{STAGES.get(stage, stage)}: {done} of {total}"
    if stage == "items" and 0 < done < total:
        text += f" · {duration(elapsed)} elapsed, about {duration(elapsed / done * (total - done))} left"
    return text


def report_time(folder: Path) -> datetime:
    """When the report was written: report.json says so; older reports have only the file's time."""
    try:
        return datetime.fromisoformat(json.loads((folder / "report.json").read_text())["written_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return datetime.fromtimestamp((folder / "report.json").stat().st_mtime).astimezone()


def report_label(folder: Path) -> str:
    """'test-app · 2026-11-21 14:03': the report's folder and when it was written."""
    return f"{folder.name} · {report_time(folder):%Y-%m-%d %H:%M}"


def report_folders(settings: policyqa.Settings) -> list[Path]:
    """Every folder holding a report.json, newest first."""
    roots = [settings.home / "reports", Path(__file__).resolve().parents[1] / "evals" / "reports"]
    found = [p.parent for root in roots if root.is_dir() for p in root.glob("*/report.json")]
    return sorted(found, key=report_time, reverse=True)


def metric_cell(metric: dict | None, digits: int = 3) -> str:
    """'0.880 [0.840, 0.910]': the value and its 95% interval from report.json."""
    if not metric or not metric.get("n") or math.isnan(metric["value"]):
        return "n/a"
    text = f"{metric['value']:.{digits}f}"
    if metric.get("ci95"):
        low, high = metric["ci95"]
        text += f" [{low:.{digits}f}, {high:.{digits}f}]"
    return text


def metric_rows(report: dict) -> tuple[list[dict], list[dict]]:
    """The retrieval-and-citation table and the verdict table: one row per metric, one column per system."""
    rows = []
    for group in ("retrieval", "citations"):
        for name in report[group].get("PolicyQA", {}):
            digits = 0 if "length" in name else 3
            rows.append({"metric": name, **{system: metric_cell(metrics.get(name), digits)
                                            for system, metrics in report[group].items()}})
    verdicts = report["verdicts"]
    verdict_rows = [{"metric": name, **{system: metric_cell(verdicts[system].get(name)) for system in verdicts}}
                    for name in VERDICT_METRICS]
    return rows, verdict_rows


def run_benchmark(index: policyqa.PolicyIndex, settings: policyqa.Settings, split: str) -> None:
    """Run the benchmark with a progress bar; the new report is then the one selected below."""
    bar = st.progress(0.0, text="Starting…")
    started = {"stage": "", "at": time.monotonic()}

    def progress(stage: str, done: int, total: int) -> None:
        if stage != started["stage"]:
            started.update(stage=stage, at=time.monotonic())
        bar.progress(min(done / max(total, 1), 1.0), text=progress_text(stage, done, total, time.monotonic() - started["at"]))

    out_dir = settings.home / "reports" / f"{split}-app"
    try:
        if split == REVIEWED:  # the reviewers' decisions, exported from the store as a dataset
            dataset = settings.home / "feedback" / "reviewed.jsonl"
            count, skipped = policyqa.export_feedback(policyqa.open_store(settings), {c.clause_id: c for c in index.clauses},
                                                      dataset)
            if count == 0:
                bar.empty()
                st.info(f"No reviewed items yet{f' ({len(skipped)} skipped: text not kept)' if skipped else ''}: "
                        "record decisions on rulings or answers (the Review page) first.")
                return
            policyqa.evaluate([dataset], index=index, out_dir=out_dir, progress=progress)
        else:
            policyqa.evaluate(split=split, index=index, out_dir=out_dir, progress=progress)
    except PolicyQAError as exc:
        st.error(literal(str(exc)))
        return
    st.session_state["eval_report"] = out_dir
    st.success("Done; the report is shown below.")


def page_evaluation(index: policyqa.PolicyIndex) -> None:
    st.header("Evaluation")
    settings = policyqa.load_settings()
    split = st.segmented_control("Dataset", ["dev", "test", REVIEWED], default="test", key="eval_split",
                                 help="dev and test: the gold splits; reviewed: the items reviewers decided "
                                      "(policyqa feedback export)") or "test"
    if st.button("Run the benchmark", key="eval_run"):
        run_benchmark(index, settings, split)
    folders = report_folders(settings)
    if not folders:
        st.info("No report yet: run the benchmark above.")
        return
    folder = st.selectbox("Report", folders, format_func=report_label, key="eval_report")
    try:
        report = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError) as exc:
        st.error(f"Cannot read {folder / 'report.json'}: {exc}")
        return
    st.caption(f"{report['items']} items · split {report.get('split') or 'custom'} · engine {report['engine']} · "
               "each number with its 95% bootstrap interval")
    rows, verdict_rows = metric_rows(report)
    # height="content": the default height shows ten rows and hid the rest of the fourteen metrics (issue 12).
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height="content")
    st.dataframe(pd.DataFrame(verdict_rows), hide_index=True, width="stretch", height="content")
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
