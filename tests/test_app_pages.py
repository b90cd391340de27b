"""The Policies and Evaluation pages: the rough edges a new user hit (issue 12).

Pure helpers of the page modules are tested directly and fast; what the pages render goes through
streamlit.testing's AppTest on the real index (`slow`)."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime

import pytest
import streamlit as st

import policyqa
from policyqa import Clause, PolicyIndex, load_settings
from tests.test_app import open_page, rendered
from policyqa._config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "app"))

from evaluation_page import metric_cell, metric_rows, progress_text, report_label  # noqa: E402
from policies_page import count_label, heading_tree, preview  # noqa: E402

APP = str(PROJECT_ROOT / "app" / "streamlit_app.py")
TIMEOUT = 180
TINY_ITEM = {"id": "t1", "kind": "message", "text": "selling fake ID cards, dm me", "expected_verdict": "violation",
             "gold": [{"quote": "trading of identity cards, passports"}]}


# --- Policies page helpers ------------------------------------------------------------------------


def test_preview_cuts_at_a_word_boundary_with_an_ellipsis():
    text = "Sellers must not  put QR codes\nthat lead to their groups in profile photos."
    assert preview(text, 200) == "Sellers must not put QR codes that lead to their groups in profile photos."
    assert preview(text, 22) == "Sellers must not put…"  # not "Sellers must not put Q"
    assert preview("Sellers must not put, QR codes", 22) == "Sellers must not put…"  # no dangling comma


def test_preview_of_chinese_text_cuts_at_a_character():
    text = "禁止发布违法违规内容，包括但不限于赌博、诈骗和色情信息。"
    assert preview(text, 8) == "禁止发布违法违规…"
    assert preview("Weixin 禁止发布违法违规内容包括但不限于赌博", 12) == "Weixin 禁止发布违…"


def test_counts_are_pluralised():
    assert [count_label(n, "clause") for n in (0, 1, 2)] == ["0 clauses", "1 clause", "2 clauses"]


def _clause(number: str, *path: str) -> Clause:
    return Clause(clause_id=f"doc/{number}", document_id="doc", document_title="Doc", heading_path=path,
                  text=f"Clause {number}.", start=0, end=1)


def test_heading_tree_groups_clauses_under_their_full_heading_path():
    clauses = [_clause("0"), _clause("II", "II. Content Rules"), _clause("II.7", "II. Content Rules", "7. Infringing"),
               _clause("II.7.1.1", "II. Content Rules", "7. Infringing", "7.1 Entity"),
               _clause("II.7.1.2", "II. Content Rules", "7. Infringing", "7.1 Entity"),
               _clause("II.8.1", "II. Content Rules", "8. Fraud"), _clause("III.1", "III. Groups")]
    tree = heading_tree(clauses)
    assert list(tree) == ["(preamble)", "II. Content Rules", "III. Groups"]
    assert [(path, [c.clause_id for c in members]) for path, members in tree["II. Content Rules"]] == [
        ((), ["doc/II"]), (("7. Infringing",), ["doc/II.7"]),
        (("7. Infringing", "7.1 Entity"), ["doc/II.7.1.1", "doc/II.7.1.2"]), (("8. Fraud",), ["doc/II.8.1"])]


# --- Evaluation page helpers and the report -------------------------------------------------------


def test_progress_shows_elapsed_and_remaining_time_while_items_run():
    assert progress_text("items", 50, 150, 20.0) == "Evaluating items: 50 of 150 · 20 s elapsed, about 40 s left"
    assert progress_text("items", 10, 150, 61.0).endswith("1 min 01 s elapsed, about 14 min 14 s left")
    assert progress_text("metrics", 2, 6, 3.0) == "Computing the metrics and their intervals: 2 of 6"
    # After the last metric the library writes the report and plots without counting them.
    assert progress_text("metrics", 6, 6, 3.0) == progress_text("report", 1, 2, 0.5) == "Writing the report and plots…"


def test_metrics_are_shown_with_their_intervals():
    assert metric_cell({"value": 0.88, "ci95": [0.8412, 0.9101], "n": 150}) == "0.880 [0.841, 0.910]"
    assert metric_cell({"value": 212.4, "ci95": [190.2, 240.9], "n": 9}, digits=0) == "212 [190, 241]"
    assert metric_cell({"value": float("nan"), "ci95": [float("nan")] * 2, "n": 0}) == metric_cell(None) == "n/a"
    report = {"retrieval": {"PolicyQA": {"hit@1": {"value": 0.5, "ci95": [0.4, 0.6], "n": 10}}, "BM25 alone": {}},
              "citations": {"PolicyQA": {}},
              "verdicts": {"PolicyQA": {"accuracy": {"value": 0.9, "ci95": [0.85, 0.95], "n": 10}}}}
    rows, verdict_rows = metric_rows(report)
    assert rows == [{"metric": "hit@1", "PolicyQA": "0.500 [0.400, 0.600]", "BM25 alone": "n/a"}]
    assert verdict_rows[0] == {"metric": "accuracy", "PolicyQA": "0.900 [0.850, 0.950]"}


def test_report_label_names_the_folder_and_when_it_was_written(tmp_path):
    folder = tmp_path / "test-app"
    folder.mkdir()
    (folder / "report.json").write_text(json.dumps({"written_at": "2026-11-21T14:03:27+00:00"}))
    assert report_label(folder) == "test-app · 2026-11-21 14:03"
    (folder / "report.json").write_text("{}")  # a report from before written_at: the file's time
    assert re.fullmatch(r"test-app · \d{4}-\d\d-\d\d \d\d:\d\d", report_label(folder))


def test_the_sections_plot_keeps_its_title_and_labels_inside_the_figure():
    from policyqa._report import sections_figure

    sections = {"weixin-standards > VII. Compliance with Applicable Laws, Regulations": 1.0,
                "wechat-community-guidelines > Terrorism, violent extremism and other criminal behavior": 0.5,
                "wecom-penalties > 1. Description": 0.8}
    fig = sections_figure(sections)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    page = fig.bbox
    texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent")) if t.get_text()]
    assert any(t.get_text() == "PolicyQA hit@5 by policy section" for t in texts)
    for text in texts:
        box = text.get_window_extent(renderer)
        assert page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1 and page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1, text


@pytest.fixture(scope="module")
def fake_index(tmp_path_factory, small_corpus):
    from tests.conftest import FakeEmbedder

    settings = load_settings(corpus_dir=small_corpus, home=tmp_path_factory.mktemp("pages") / "home")
    PolicyIndex(settings, embedder=FakeEmbedder()).build()
    return PolicyIndex(settings, embedder=FakeEmbedder()).load()


def test_evaluation_reports_progress_after_the_last_item_and_dates_the_report(fake_index, tmp_path):
    dataset = tmp_path / "tiny.jsonl"
    dataset.write_text(json.dumps(TINY_ITEM) + "\n")
    seen = []
    policyqa.evaluate([dataset], out_dir=tmp_path / "r", index=fake_index, with_llama_baseline=False,
                      progress=lambda stage, done, total: seen.append((stage, done, total)))
    after = seen[seen.index(("items", 1, 1)) + 1:]
    metrics = [step for step in after if step[0] == "metrics"]
    assert after[0] == ("metrics", 0, metrics[-1][2]) and metrics[-1] == ("metrics", metrics[-1][2], metrics[-1][2])
    assert len(metrics) > 3  # a step at a time, not one jump
    assert after[len(metrics):] == [("report", 0, 2), ("report", 1, 2), ("report", 2, 2)]  # then the report is written
    written = datetime.fromisoformat(json.loads((tmp_path / "r" / "report.json").read_text())["written_at"])
    assert abs((datetime.now().astimezone() - written).total_seconds()) < 600


def test_write_report_reports_its_own_stage(fake_index, tmp_path):
    from policyqa._evaluation import EvalReport
    from policyqa._report import write_report

    dataset = tmp_path / "tiny.jsonl"
    dataset.write_text(json.dumps(TINY_ITEM) + "\n")
    report = policyqa.evaluate([dataset], out_dir=tmp_path / "first", index=fake_index, with_llama_baseline=False)
    assert isinstance(report, EvalReport)
    seen = []
    write_report(report, tmp_path / "again", progress=lambda *args: seen.append(args))
    assert seen[0] == ("report", 0, 2) and seen[-1] == ("report", 2, 2)


@pytest.mark.slow
def test_the_llama_index_baseline_prints_no_library_noise(tmp_path, capfd):
    from policyqa._evaluation import LlamaIndexBaseline
    from policyqa._indexing import resolve_model_path

    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "rules.txt").write_text("Do not sell fake identity cards.\n\nDo not post spam.\n")
    baseline = LlamaIndexBaseline(tmp_path / "corpus", str(resolve_model_path(load_settings().embedding_model)))
    assert baseline.retrieve("fake ID cards", 1)
    out, err = capfd.readouterr()
    assert "LLM is explicitly disabled" not in out + err


# --- The pages, rendered --------------------------------------------------------------------------


@pytest.mark.slow
def test_policies_page_shows_the_heading_tree_with_counts_in_words(app):
    at = open_page(app, "Policies")
    at.selectbox(key="policy_document").set_value("Standards of Weixin Account Usage").run()
    labels = [e.label for e in at.expander]
    assert "II. Content Rules (166 clauses)" in labels and "Introduction (1 clause)" in labels
    assert not any("(1 clauses)" in label for label in labels)
    text = rendered(at)
    assert "#### 8\\. Fraudulent information · 27 clauses" in text
    assert "##### 7\\.1 Entity infringement · 2 clauses" in text


@pytest.mark.slow
def test_policy_search_results_show_document_and_heading(app):
    at = open_page(app, "Policies")
    at.text_input(key="policy_search").set_value("selling fake ID cards").run()
    hit = next(m.value for m in at.markdown if "weixin-standards/II.9.2" in m.value and "›" in m.value)
    assert "**Standards of Weixin Account Usage** › II\\. Content Rules \\> 9\\. Content involving illegal goods" in hit


@pytest.mark.slow
def test_a_clause_opened_from_a_citation_highlights_the_quote(app):
    app.query_params["page"] = "Policies"
    app.query_params["clause"] = "weixin-standards/II.12.7"
    app.query_params["quote"] = "QR codes"
    app.run()
    assert ":orange-background[QR codes]" in rendered(app)


@pytest.mark.slow
def test_browser_back_returns_to_the_previous_page(app):
    at = open_page(app, "Policies")
    at.query_params["page"] = "Ask"  # Back: the URL changes, the session (and the radio's state) stays
    at.run()
    assert at.sidebar.radio(key="page_radio").value == "Ask"
    assert at.header[0].value == "Ask"


@pytest.mark.slow
def test_evaluation_page_selects_the_new_dated_report_and_shows_every_metric(app, real_home, monkeypatch):
    dataset = real_home / "tiny.jsonl"
    dataset.write_text(json.dumps(TINY_ITEM) + "\n")
    index = PolicyIndex(load_settings(home=real_home)).load()
    for name in ("older", "newer"):
        policyqa.evaluate([dataset], out_dir=real_home / "reports" / name, with_llama_baseline=False, index=index)
    real_evaluate = policyqa.evaluate

    def tiny_benchmark(*, split, index, out_dir, progress):  # the page's call, on one item
        return real_evaluate([dataset], out_dir=out_dir, index=index, with_llama_baseline=False, progress=progress)

    monkeypatch.setattr(policyqa, "evaluate", tiny_benchmark)
    heights = []
    real_dataframe = st.dataframe

    def dataframe(data, *args, **kwargs):  # AppTest does not expose an element's height
        heights.append(kwargs.get("height", "auto"))
        return real_dataframe(data, *args, **kwargs)

    monkeypatch.setattr(st, "dataframe", dataframe)
    at = open_page(app, "Evaluation")
    at.selectbox(key="eval_report").set_value(real_home / "reports" / "older").run()
    at.button(key="eval_run").click().run()
    assert not at.exception
    chosen = at.selectbox(key="eval_report")
    assert chosen.value == real_home / "reports" / "test-app"
    assert re.fullmatch(r"test-app · \d{4}-\d\d-\d\d \d\d:\d\d", chosen.format_func(chosen.value))
    metrics, verdicts = at.dataframe[0], at.dataframe[1]
    assert len(metrics.value) == 14 and metrics.value["PolicyQA"].str.contains(r"\[").any()
    assert verdicts.value.loc[0, "metric"] == "accuracy" and "[" in verdicts.value.loc[0, "PolicyQA"]
    assert heights[-3:-1] == ["content", "content"]  # the two metric tables, sized to their rows


@pytest.mark.slow
def test_evaluation_page_scores_the_reviewers_decisions(app, real_home, monkeypatch):
    index = PolicyIndex(load_settings(home=real_home)).load()
    store = policyqa.open_store(load_settings())  # the app fixture's own store
    ruling = policyqa.judge("selling fake ID cards, any province, dm me", index=index)
    record_id, = store.record("judge", [ruling], stamp=policyqa.AuditStamp.of(index), source="app")
    store.decide(record_id, reviewer="ann", agree=True)
    real_evaluate = policyqa.evaluate
    monkeypatch.setattr(policyqa, "evaluate", lambda datasets, **kw: real_evaluate(datasets, with_llama_baseline=False, **kw))
    at = open_page(app, "Evaluation")
    at.session_state["eval_split"] = "reviewed"
    at.button(key="eval_run").click().run()
    assert not at.exception
    assert at.selectbox(key="eval_report").value.name == "reviewed-app"
    assert any("1 items" in str(c.value) for c in at.caption)
    dataset = [json.loads(line) for line in (real_home / "feedback" / "reviewed.jsonl").read_text().splitlines()]
    assert dataset[0]["expected_verdict"] == "violation" and dataset[0]["gold"][0]["clause"] == ruling.violations[0].clause_id
