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


@pytest.fixture
def app(real_home, monkeypatch):
    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    st.cache_resource.clear()
    st.cache_data.clear()
    return AppTest.from_file(APP, default_timeout=TIMEOUT)


def rendered(at: AppTest) -> str:
    """All text the page rendered (markdown, captions, text, alerts), for assertions."""
    parts = []
    for kind in ("markdown", "caption", "text", "error", "warning", "info", "success", "subheader", "header"):
        parts += [str(getattr(element, "value", "")) for element in getattr(at, kind)]
    parts += [str(e.value) for e in at.sidebar.text]
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
    assert len(app.session_state["ask_history"]) == 2  # history kept for the session


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
    assert ":red-background[Also I can get you fapiao invoices" in text
    assert "weixin-standards/V.1" in text  # a Weixin group message: Weixin's penalties


def test_pasted_markup_is_shown_as_text(app):
    at = open_page(app, "Adjudicate")
    at.text_area(key="judge_text").set_value("<b>hello</b> **bold** [link](http://x.test) selling fake ID cards")
    at.button(key="judge_button").click().run()
    text = rendered(at)
    assert "<b>hello</b>" not in text and "\\<b\\>hello" in text
    assert "](http" not in text.replace("](?page", "")


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
