"""The Streamlit app, through streamlit.testing's AppTest: what each page renders."""

from __future__ import annotations

import json

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from policyqa._config import PROJECT_ROOT

APP = str(PROJECT_ROOT / "app" / "streamlit_app.py")
TIMEOUT = 180

pytestmark = pytest.mark.slow


def rendered(at: AppTest) -> str:
    """All text the page rendered (markdown, captions, text, alerts), for assertions."""
    parts = []
    for kind in ("markdown", "caption", "text", "error", "warning", "info", "success", "subheader", "header"):
        parts += [str(getattr(element, "value", "")) for element in getattr(at, kind)]
    parts += [str(e.value) for e in at.sidebar.text]
    parts += [e.proto.body for e in at.get("html")]  # untrusted text, drawn as escaped HTML
    return "\n".join(parts)


def open_page(at: AppTest, page: str) -> AppTest:
    at.run()
    at.sidebar.radio(key="page_radio").set_value(page).run()
    return at


def test_ask_page_answers_with_a_verdict_and_its_source(app):
    app.run()
    assert not app.exception
    app.chat_input[0].set_value("Can a seller put a QR code to her group in her profile photo?").run()
    text = rendered(app)
    assert "Prohibited" in text and "weixin-standards/II.12.7" in text
    assert "Standards of Weixin Account Usage" in text and "open in Policies" in text
    app.chat_input[0].set_value("Can I post photos of myself breastfeeding my newborn?").run()
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)  # a reload: a new session
    reloaded.run()
    questions = [e.value for e in reloaded.text if e.value.startswith("Can ")]
    assert questions == ["Can a seller put a QR code to her group in her profile photo?",
                         "Can I post photos of myself breastfeeding my newborn?"]  # history kept in the store
    assert "Allowed" in rendered(reloaded) and "Prohibited" in rendered(reloaded)


def test_an_empty_ask_page_offers_example_questions_that_ask_in_one_click(app):
    app.run()
    examples = [b for b in app.button if b.key and b.key.startswith("example-")]
    assert len(examples) >= 3
    examples[0].click().run()
    assert "weixin-standards/II.12.7" in rendered(app) and not [b for b in app.button if (b.key or "").startswith("example-")]


def test_citations_explain_score_and_stance(app):
    app.run()
    app.chat_input[0].set_value("Can a seller put a QR code to her group in her profile photo?").run()
    captions = [c for c in app.caption if "score" in str(c.value)]
    assert captions and "stance prohibits (the clause forbids something)" in captions[0].value
    assert "cosine similarity" in captions[0].help and "not the verdict's confidence" in captions[0].help


def test_sidebar_shows_engine_and_fingerprint(app):
    app.run()
    sidebar = "\n".join(str(e.value) for e in app.sidebar.text)
    assert "offline" in sidebar and "corpus" in sidebar and "clauses" in sidebar


def test_adjudicate_page_rules_and_highlights_the_offending_span(app):
    at = open_page(app, "Adjudicate")
    message = "Hi all, lift is serviced Tuesday. Also I can get you fapiao invoices for any amount, 3% fee."
    at.text_area(key="judge_text").set_value(message)
    at.button(key="judge_button").click().run()
    text = rendered(at)
    assert "Violation" in text and "Penalties the rules set" in text
    assert '<mark style="background: rgba(255, 43, 43, 0.18); color: inherit;">Also I can get you fapiao invoices' in text
    assert "weixin-standards/V.1" in text  # a Weixin group message: Weixin's penalties


def test_an_edited_message_hides_the_old_ruling_until_it_is_judged(app):
    at = open_page(app, "Adjudicate")
    at.text_area(key="judge_text").set_value("selling fake ID cards, dm me")
    at.button(key="judge_button").click().run()
    assert "Violation" in rendered(at)
    at.text_area(key="judge_text").set_value("lunch at noon tomorrow?").run()
    assert "Violation" not in rendered(at) and "The message changed" in rendered(at)
    at.button(key="judge_button").click().run()
    assert "No violation" in rendered(at) and "The message changed" not in rendered(at)


POKER = "who wants to join poker night Friday? no money, just snacks and bragging rights 🃏 loser picks the next movie"


def test_needs_review_says_why_once_and_lists_the_nearest_clauses_closest_first(app):
    at = open_page(app, "Adjudicate")
    at.text_area(key="judge_text").set_value(POKER)
    at.button(key="judge_button").click().run()
    text = rendered(at)
    assert "Needs review" in text
    assert text.count("for a person to decide") + text.count("person should decide") == 1
    scores = [float(c.value.split("score ")[1].split(" ")[0]) for c in at.caption if "score " in str(c.value)]
    assert len(scores) >= 3 and scores == sorted(scores, reverse=True)


def test_a_needs_review_ruling_is_resolved_in_the_review_queue_and_stays_resolved(app):
    at = open_page(app, "Adjudicate")
    at.text_area(key="judge_text").set_value(POKER)
    at.button(key="judge_button").click().run()
    at.sidebar.radio(key="page_radio").set_value("Review").run()
    assert "1 of 1 waiting" in rendered(at) and "poker night" in rendered(at)
    at.text_input(key=[t.key for t in at.text_input if t.key.startswith("review-note-")][0]).set_value("a home game, no stakes")
    at.button(key="review-ok").click().run()
    assert not at.exception and "Nothing waits for review" in rendered(at)
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params["page"] = "Review"
    reloaded.run()
    assert "Nothing waits for review" in rendered(reloaded)
    import policyqa

    record = next(policyqa.open_store(policyqa.load_settings()).audit())
    assert record.decision.verdict == "no_violation" and record.decision.note == "a home game, no stakes"
    assert record.source == "app" and record.input_text == POKER


def test_a_decision_on_a_ruling_is_recorded_from_its_form(app):
    at = open_page(app, "Adjudicate")
    at.text_area(key="judge_text").set_value("selling fake ID cards, dm me")
    at.button(key="judge_button").click().run()
    form_radio = next(r for r in at.radio if (r.key or "").startswith("decide-verdict-"))
    form_radio.set_value("agree")
    next(b for b in at.button if b.label == "Record decision").click().run()
    assert any("Decided: Violation (agreed)" in s.value for s in at.success)


def test_a_batch_row_opens_its_full_ruling_and_the_filters_shape_the_table(app):
    import policyqa

    index = policyqa.PolicyIndex(policyqa.load_settings()).load()
    texts = ["selling fake ID cards, any province, dm me", "lunch at noon tomorrow?"]
    rows = [{"id": f"r{n}", "text": t} for n, t in enumerate(texts)] + [{"id": "bad", "error": "line 3 is not valid JSON"}]
    app.session_state["batch_records"] = list(policyqa.run_rows(rows, lambda batch: policyqa.judge_many(batch, index=index)))
    at = open_page(app, "Adjudicate")
    assert "Violation 1 · No violation 1 · error 1" in rendered(at).replace("Error 1", "error 1")
    opener = next(s for s in at.selectbox if s.label == "Open a row")
    opener.set_value(0).run()
    text = rendered(at)
    assert "Row r0" in text and "weixin-standards/II.9.2" in text and "Offending part of the message:" in text
    assert "Close to" in text  # the reason
    at.multiselect(key="batch_verdicts").set_value(["no_violation"]).run()
    assert "1 of 3 rows shown" in rendered(at)
    next(s for s in at.selectbox if s.label == "Open a row").set_value(0).run()
    assert "Row r1" in rendered(at) and "No violation" in rendered(at)


def test_pasted_markup_is_shown_as_text(app):
    at = open_page(app, "Adjudicate")
    message = "<b>hello</b> **bold** [link](http://x.test) ![i](http://beacon.test/a.png) www.y.test a@b.com selling fake ID cards"
    at.text_area(key="judge_text").set_value(message)
    at.button(key="judge_button").click().run()
    text = rendered(at)
    assert "<b>hello</b>" not in text and "&lt;b&gt;hello&lt;/b&gt;" in text
    markdown = "\n".join(str(e.value) for kind in ("markdown", "caption", "error", "warning", "info")
                         for e in getattr(at, kind))
    for live in ("http://", "www.y", "a@b", "](http", "<b>"):  # nothing of the message reaches markdown as is
        assert live not in markdown.replace("](?page", "")


def test_untrusted_text_in_alerts_cannot_form_links():
    import sys

    sys.path.insert(0, str(PROJECT_ROOT / "app"))
    from rendering import literal, text_html

    shown = literal("no clause 'x' see http://evil.test/?a=b or www.evil.test, mail a@evil.test ![i](http://b.test/i.png)")
    for live in ("http:", "www.", "a@", "](", "!["):
        assert live not in shown
    assert text_html("<img src=http://b.test/x.png> fake IDs", "fake IDs") == (
        '&lt;img src=http://b.test/x.png&gt; <mark style="background: rgba(255, 43, 43, 0.18); color: inherit;">fake IDs</mark>')


def test_empty_message_gets_a_clear_error(app):
    at = open_page(app, "Adjudicate")
    at.text_area(key="judge_text").set_value("   ")
    at.button(key="judge_button").click().run()
    assert any("empty" in e.value for e in at.error) and not at.exception


def test_policies_page_opens_a_clause_by_link_with_neighbours(app):
    app.query_params["page"] = "Policies"
    app.query_params["clause"] = "weixin-standards/II.12.7"
    app.run()
    text = rendered(app)
    assert "weixin-standards/II.12.7" in text and "Traffic\\-directing information" in text
    assert "weixin-standards/II.12.6" in text and "weixin-standards/II.12.8" in text  # neighbours


def test_policies_page_searches_and_browses(app):
    at = open_page(app, "Policies")
    at.text_input(key="policy_search").set_value("selling fake ID cards").run()
    assert "weixin-standards/II.9.2" in rendered(at)
    assert len(at.expander) >= 5  # the heading tree of the chosen document


def test_unknown_clause_link_is_a_clear_error(app):
    app.query_params["page"] = "Policies"
    app.query_params["clause"] = "weixin-standards/XX.1"
    app.run()
    assert any("No clause with id" in e.value for e in app.error)


def test_evaluation_page_opens_the_latest_report(app, real_home):
    import policyqa

    dataset = real_home / "tiny.jsonl"
    dataset.write_text(json.dumps({"id": "t1", "kind": "message", "text": "selling fake ID cards, dm me",
                                   "expected_verdict": "violation",
                                   "gold": [{"quote": "trading of identity cards, passports"}]}) + "\n")
    policyqa.evaluate([dataset], out_dir=real_home / "reports" / "tiny", with_llama_baseline=False,
                      index=policyqa.PolicyIndex(policyqa.load_settings(home=real_home)).load())
    at = open_page(app, "Evaluation")
    assert len(at.dataframe) >= 2 and not at.exception
    assert any("Misses" in s.value for s in at.subheader)


def test_a_corrupt_index_is_an_error_message_not_a_traceback(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / "builds" / "b").mkdir(parents=True)
    (home / "builds" / "b" / "manifest.json").write_text("{broken")
    (home / "index").symlink_to(home / "builds" / "b")
    monkeypatch.setenv("POLICYQA_HOME", str(home))
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert any("cannot be used" in e.value and "policyqa index" in e.value for e in at.error)
