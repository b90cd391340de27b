"""Evaluation: dataset validation, quote matching, and quality floors on the dev split.

The floors were set from measurement on dev (see the comments) a little below what the current
system clears; raise them as the system improves, never lower them to make a change pass."""

from __future__ import annotations

import json

import pytest

from policyqa import DatasetError, EvalItem, load_dataset, normalise_for_match
from policyqa._config import PROJECT_ROOT
from policyqa._evaluation import GoldMatcher, bootstrap, _mean


def test_normalisation_matches_the_documented_rules():
    assert normalise_for_match("User\u2019s  **Rights**\\ — ﬁne") == normalise_for_match("user's rights — fine")
    assert normalise_for_match("userâ€™s") == "user's"


def test_both_splits_load_and_keep_every_item(tmp_path):
    dev = load_dataset([PROJECT_ROOT / "evals/datasets/dev.jsonl"])
    test = load_dataset([PROJECT_ROOT / "evals/datasets/test.jsonl"])
    assert len(dev) + len(test) >= 200
    assert not {i.id for i in dev} & {i.id for i in test}
    for split in (dev, test):
        assert {i.expected_verdict for i in split} == {"prohibited", "allowed", "informational", "not_covered",
                                                       "violation", "no_violation"}


def test_every_gold_quote_matches_a_clause(real_index):
    matcher = GoldMatcher(real_index.clauses)
    for item in load_dataset([PROJECT_ROOT / "evals/datasets"]):
        for ids in matcher.gold_clause_ids(item):
            assert ids, (item.id, "a gold quote matches no clause")


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": "x", "kind": "question", "text": "t", "expected_verdict": "violation"}', "does not fit"),
    ('{"id": "x", "kind": "question", "text": "", "expected_verdict": "allowed"}', "line 1"),
    ("not json", "line 1"),
])
def test_invalid_datasets_are_reported_with_the_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(DatasetError, match=message):
        load_dataset([path])


def test_duplicate_ids_and_missing_files_are_errors(tmp_path):
    row = json.dumps({"id": "a", "kind": "message", "text": "hi", "expected_verdict": "no_violation"})
    (tmp_path / "one.jsonl").write_text(row + "\n")
    (tmp_path / "two.jsonl").write_text(row + "\n")
    with pytest.raises(DatasetError, match="twice"):
        load_dataset([tmp_path])
    with pytest.raises(DatasetError, match="no dataset"):
        load_dataset([tmp_path / "missing.jsonl"])


def test_bootstrap_interval_brackets_the_value():
    metric = bootstrap([1.0] * 70 + [0.0] * 30, _mean)
    assert metric.low <= metric.value == 0.7 <= metric.high and metric.high - metric.low < 0.25


def test_clause_id_gold_is_accepted(real_index):
    item = EvalItem(id="x", kind="message", text="t", expected_verdict="violation", gold=[{"clause": "wechat-aup/2.o"}])
    assert GoldMatcher(real_index.clauses).matches("wechat-aup/2.o", item)


@pytest.mark.slow
def test_dev_split_clears_the_quality_floors(real_index, tmp_path):
    from policyqa import evaluate

    report = evaluate(split="dev", index=real_index, out_dir=tmp_path / "report", with_llama_baseline=False)
    headline = report.headline()
    english, chinese = report.groups["en"], report.groups["zh"]
    # Measured on dev at 60a0c5a (policyqa eval --split dev). English (334 items): accuracy 0.913,
    # citation hit@3 0.938 (search 0.967), precision@3 0.808, benign false positives 0.032,
    # confidently wrong 0.042. Chinese (455, 120 of them the fresh zh_3 items): accuracy 0.921, hit@3
    # 0.863, precision@3 0.886, false positives 0.017, confidently wrong 0.015. Both: hit@5 0.984,
    # MRR@10 0.908. The floors sit a little below, so a regression fails and noise does not; the
    # Chinese hit@3 floor (0.86) was set on the 335-item dev and now sits only 0.003 below.
    assert headline["quote exactness"] == 1.0  # anything under 100% is a bug
    assert headline["hit@5"] >= 0.95
    assert headline["MRR@10"] >= 0.87
    assert english["accuracy"].value >= 0.88
    assert english["citation hit@3"].value >= 0.90
    assert english["citation precision@3"].value >= 0.77
    assert english["citation hit@3"].value >= english["search hit@3"].value - 0.05  # issue 8: near the search
    assert english["benign false-positive rate"].value <= 0.06
    assert english["confidently wrong rate"].value <= 0.06
    assert chinese["accuracy"].value >= 0.90
    assert chinese["citation hit@3"].value >= 0.86
    assert chinese["citation precision@3"].value >= 0.85
    assert chinese["benign false-positive rate"].value <= 0.06
    assert chinese["confidently wrong rate"].value <= 0.06
    assert report.calibration["expected calibration error"].value <= 0.08
    for name in ("report.json", "report.md", "failures.jsonl", "confusion.png", "hit_at_k.png", "sections.png",
                 "baselines.png", "reliability.png"):
        assert (tmp_path / "report" / name).is_file()
    assert "By language and kind" in (tmp_path / "report" / "report.md").read_text()


def test_eval_command_fails_cleanly_on_a_missing_dataset(tmp_path):
    from typer.testing import CliRunner

    from policyqa.cli import app

    result = CliRunner().invoke(app, ["eval", "--dataset", str(tmp_path / "nope.jsonl"), "--no-llama-baseline"])
    assert result.exit_code != 0
