"""Writes an EvalReport as report.json, report.md, PNG plots and failures.jsonl."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from ._evaluation import KS, EvalReport, Metric

SECTION_LABEL_WIDTH = 48
"""Section names wrap at this many characters on the sections plot."""
PLOTS = ("sections.png", "confusion.png", "hit_at_k.png", "baselines.png", "reliability.png")


def _plain(value: Any) -> Any:
    if isinstance(value, Metric):
        return value.as_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _fmt(metric: Metric | None, digits: int = 3) -> str:
    if metric is None or metric.n == 0 or math.isnan(metric.value):
        return "n/a"
    return f"{metric.value:.{digits}f} [{metric.low:.{digits}f}, {metric.high:.{digits}f}]"


def _ratio(ours: Metric | None, theirs: Metric | None) -> str:
    if not ours or not theirs or not theirs.value or math.isnan(theirs.value) or math.isnan(ours.value):
        return "n/a"
    return f"{ours.value / theirs.value:.2f}"


def write_report(report: EvalReport, out_dir: Path, *,
                 progress: Callable[[str, int, int], None] | None = None) -> list[Path]:
    """Write every report file into out_dir (created if needed) and return their paths.

    report.json records when it was written: a folder name need not carry the date for a reader to
    tell two runs apart. progress(stage "report", done, total) follows the files; the plots are most
    of the time."""
    progress = progress or (lambda stage, done, total: None)
    progress("report", 0, 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = {k: _plain(v) for k, v in report.__dict__.items() if k != "failures"}
    data["failure_count"] = len(report.failures)
    data["written_at"] = datetime.now().astimezone().isoformat(timespec="seconds")
    (out_dir / "report.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with (out_dir / "failures.jsonl").open("w", encoding="utf-8") as handle:
        for row in report.failures:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    (out_dir / "report.md").write_text(_markdown(report), encoding="utf-8")
    progress("report", 1, 2)
    _plots(report, out_dir)
    progress("report", 2, 2)
    return [out_dir / name for name in ("report.json", "report.md", "failures.jsonl", *PLOTS)]


def _markdown(r: EvalReport) -> str:
    systems = list(r.retrieval)
    baselines = [s for s in systems if s != "PolicyQA"]
    lines = [f"# PolicyQA evaluation ({r.split or 'custom'} split, engine: {r.engine})", "",
             f"{r.items} items ({r.questions} questions, {r.messages} messages) from {', '.join(r.dataset)}. "
             "Each number has a 95% bootstrap interval; a ratio is PolicyQA / baseline.", "",
             "## Retrieval and citations", "",
             "| metric | PolicyQA | " + " | ".join(f"{b} | ratio" for b in baselines) + " |",
             "|---|---|" + "---|---|" * len(baselines)]
    metric_rows = [(name, "retrieval") for name in [f"hit@{k}" for k in KS] + ["MRR@10", "nDCG@10"]]
    metric_rows += [(name, "citations") for name in ("citation hit@3", "citation precision@3", "citation precision", "citation recall (items)",
                                                     "citation recall (gold citations)", "citation F1",
                                                     "quote exactness", "mean cited length (chars)")]
    for name, group in metric_rows:
        table = getattr(r, group)
        ours = table.get("PolicyQA", {}).get(name)
        digits = 0 if "length" in name else 3
        cells = [f"{_fmt(table.get(b, {}).get(name), digits)} | {_ratio(ours, table.get(b, {}).get(name))}" for b in baselines]
        lines.append(f"| {name} | {_fmt(ours, digits)} | " + " | ".join(cells) + " |")
    if r.original_gold:
        lines += ["", f"Against the gold as its authors wrote it, without the {r.audit_additions} citations the blind "
                      "completeness audit added (evals/authoring/audit/): PolicyQA's citation hit@3 "
                      f"{_fmt(r.original_gold.get('citation hit@3'))}, precision@3 "
                      f"{_fmt(r.original_gold.get('citation precision@3'))}."]
    lines += ["", r.baseline_note, "", "## Verdicts", "",
              "| metric | PolicyQA | top-1 stance (retrieval only) | ratio |", "|---|---|---|---|"]
    ours_v, base_v = r.verdicts.get("PolicyQA", {}), r.verdicts.get("top-1 stance (retrieval only)", {})
    for name in ("accuracy", "benign false-positive rate", "abstention rate on not_covered items", "needs_review rate",
                 "confidently wrong rate"):
        lines.append(f"| {name} | {_fmt(ours_v.get(name))} | {_fmt(base_v.get(name))} | {_ratio(ours_v.get(name), base_v.get(name))} |")
    lines += ["", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for label, row in ours_v.get("per_class", {}).items():
        lines.append(f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |")
    labels = ours_v.get("labels", [])
    lines += ["", "Confusion (rows: expected, columns: returned):", "", "| | " + " | ".join(labels) + " |",
              "|---|" + "---|" * len(labels)]
    for want, row in ours_v.get("confusion", {}).items():
        lines.append(f"| {want} | " + " | ".join(str(row.get(l, 0)) for l in labels) + " |")
    calibration = r.calibration
    if calibration:
        lines += ["", f"Calibration of committed verdicts ({calibration.get('committed', 0)} items): expected calibration "
                  f"error {_fmt(calibration.get('expected calibration error'))} (reliability.png).", "",
                  "| confidence bin | mean confidence | accuracy | items |", "|---|---|---|---|"]
        lines += [f"| {b['low']:.1f}-{b['high']:.1f} | {b['confidence']:.3f} | {b['accuracy']:.3f} | {b['count']} |"
                  for b in calibration.get("bins", [])]
    if r.groups:
        names = ["accuracy", "benign false-positive rate", "confidently wrong rate", "needs_review rate",
                 "citation hit@3", "search hit@3", "citation precision@3", "quote exactness"]
        lines += ["", "## By language and kind", "", "| group | items | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        for key, row in r.groups.items():
            lines.append(f"| {key} | {row['items']} | " + " | ".join(_fmt(row.get(n)) for n in names) + " |")
    lines += ["", f"Latency per item: p50 {r.latency.get('p50 ms', 'n/a')} ms, p95 {r.latency.get('p95 ms', 'n/a')} ms.", "",
              "## hit@5 by policy section", "", "| section | hit@5 |", "|---|---|"]
    lines += [f"| {section} | {value:.3f} |" for section, value in r.sections.items()]
    lines += ["", f"{len(r.failures)} items missed a verdict or citation: see failures.jsonl.", "",
              *[f"![{name}]({name})" for name in PLOTS], ""]
    return "\n".join(lines)


def sections_figure(sections: dict[str, float]):
    """The hit@5 bar per policy section. Section names run to 70 characters: unwrapped, they squeezed
    the axes into a sliver and its centred title ran off the figure (issue 12). The names are wrapped
    and the title belongs to the figure, which constrained layout keeps inside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [textwrap.fill(name, SECTION_LABEL_WIDTH) for name in sections]
    lines = sum(name.count("\n") + 1 for name in names)
    fig, ax = plt.subplots(figsize=(8, max(3, 0.8 + 0.2 * lines + 0.12 * len(names))), layout="constrained")
    ax.barh(range(len(names)), list(sections.values()), color="#3b7dd8")
    ax.set_yticks(range(len(names)), names, fontsize=9), ax.set_ylim(max(len(names), 1) - 0.5, -0.5)
    ax.set_xlim(0, 1), ax.set_xlabel("hit@5")
    fig.suptitle("PolicyQA hit@5 by policy section")
    return fig


def _plots(r: EvalReport, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = sections_figure(r.sections)
    fig.savefig(out_dir / "sections.png", dpi=110), plt.close(fig)

    verdicts = r.verdicts.get("PolicyQA", {})
    labels, confusion = verdicts.get("labels", []), verdicts.get("confusion", {})
    expected = list(confusion)
    fig, ax = plt.subplots(figsize=(1.3 * len(labels) + 2, 0.8 * len(expected) + 2))
    grid = [[confusion[w].get(g, 0) for g in labels] for w in expected]
    ax.imshow(grid, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right"), ax.set_yticks(range(len(expected)), expected)
    for i, row in enumerate(grid):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center")
    ax.set_xlabel("returned"), ax.set_ylabel("expected"), ax.set_title("Verdict confusion")
    fig.tight_layout(), fig.savefig(out_dir / "confusion.png", dpi=110), plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for system, metrics in r.retrieval.items():
        ax.plot(KS, [metrics[f"hit@{k}"].value if f"hit@{k}" in metrics else float("nan") for k in KS], marker="o", label=system)
    ax.set_xticks(KS), ax.set_ylim(0, 1.02), ax.set_xlabel("k"), ax.set_ylabel("hit@k"), ax.set_title("hit@k")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout(), fig.savefig(out_dir / "hit_at_k.png", dpi=110), plt.close(fig)

    bins = r.calibration.get("bins", [])
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", label="perfectly calibrated")
    if bins:
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o", color="#3b7dd8", label="PolicyQA")
        for b in bins:
            ax.annotate(str(b["count"]), (b["confidence"], b["accuracy"]), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set_xlim(0, 1), ax.set_ylim(0, 1.02), ax.set_xlabel("stated confidence"), ax.set_ylabel("accuracy")
    ece = r.calibration.get("expected calibration error")
    ax.set_title(f"Reliability of committed verdicts (ECE {ece.value:.3f})" if ece and ece.n else "Reliability")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout(), fig.savefig(out_dir / "reliability.png", dpi=110), plt.close(fig)

    names = ["hit@1", "hit@5", "MRR@10", "nDCG@10", "citation precision", "citation recall (items)"]
    systems = list(r.retrieval)
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(systems), 1)
    for i, system in enumerate(systems):
        values = []
        for name in names:
            table = r.citations if name.startswith("citation") else r.retrieval
            metric = table.get(system, {}).get(name)
            values.append(metric.value if metric and not math.isnan(metric.value) else 0.0)
        ax.bar([x + i * width for x in range(len(names))], values, width, label=system)
    ax.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(names))], names, rotation=20, ha="right")
    ax.set_ylim(0, 1), ax.set_title("PolicyQA vs baselines")
    ax.legend(fontsize=8, ncol=len(systems), loc="upper center", bbox_to_anchor=(0.5, -0.28))
    fig.tight_layout(), fig.savefig(out_dir / "baselines.png", dpi=110), plt.close(fig)
