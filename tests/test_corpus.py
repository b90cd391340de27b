"""Corpus and clause stage: cleaning keeps every word, clauses follow the documents' own structure."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import ftfy
import pytest

from policyqa._clauses import parse_document
from policyqa._config import PROJECT_ROOT
from policyqa._corpus import SOURCES, build_corpus, load_documents
from policyqa._profiles import PRODUCTS, PROFILES

CORPUS = PROJECT_ROOT / "corpus"


def _provenance_normal(text: str) -> str:
    """Whitespace and escape normalisation used to find a clause in its raw source."""
    text = ftfy.fix_encoding(text)
    text = re.sub(r"\[([^\]\n]+)\]\((?:https?://|/)[^)\s]*\)", r"\1", text)
    text = text.replace("\\", "").replace("*", "")
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def parsed():
    return {doc.document_id: (doc, text, parse_document(doc, text)) for doc, text in load_documents(CORPUS)}


def test_committed_corpus_is_what_the_cleaner_produces(tmp_path: Path):
    shutil.copytree(CORPUS / SOURCES, tmp_path / SOURCES)
    shutil.copytree(CORPUS / PROFILES, tmp_path / PROFILES)
    shutil.copy(CORPUS / PRODUCTS, tmp_path / PRODUCTS)
    documents = build_corpus(tmp_path)
    assert len(documents) == len(list((CORPUS / PROFILES).glob("*.toml")))
    for doc in documents:
        assert (tmp_path / doc.corpus_file).read_text() == (CORPUS / doc.corpus_file).read_text(), doc.corpus_file


def test_profiles_keep_provenance_and_splits_the_combined_source(parsed):
    by_source = {}
    for doc, _, _ in parsed.values():
        assert (CORPUS / SOURCES / doc.source_file).is_file()
        by_source.setdefault(doc.source_file, []).append(doc.document_id)
    assert sorted(by_source["001_31931f9c0a3c4fe9.txt"]) == ["wechat-aup", "wechat-community-guidelines"]
    assert parsed["weixin-standards"][0].date_given == "2024-10-24"
    assert parsed["wechat-aup"][0].date_given == "2023-08-01"
    assert len(parsed) == 6


def test_every_clause_is_found_verbatim_in_its_source(parsed):
    for doc, _, clauses in parsed.values():
        source = _provenance_normal((CORPUS / SOURCES / doc.source_file).read_text(encoding="utf-8"))
        for clause in clauses:
            assert _provenance_normal(clause.text) in source, clause.clause_id


def test_offsets_point_at_the_clause_text(parsed):
    for _, text, clauses in parsed.values():
        for clause in clauses:
            assert text[clause.start : clause.end] == clause.text


@pytest.mark.parametrize("debris", ["Skip to content", "Contact Us", "contact-form-7", "图片", "â€", "\\", "======"])
def test_web_debris_is_gone_from_the_corpus(debris):
    for path in CORPUS.glob("*.txt"):
        assert debris not in path.read_text(encoding="utf-8"), (debris, path.name)


def test_markdown_emphasis_is_gone_from_markdown_sources():
    # The contraband article's "Hardman ** meeting room" is a censored name, part of its words.
    for name in ("wechat-aup.txt", "wechat-community-guidelines.txt", "wechat-community-guidelines-intro.txt"):
        assert "*" not in (CORPUS / name).read_text().replace("\n* ", "\n")


def test_mojibake_and_escapes_are_repaired():
    intro = (CORPUS / "wechat-community-guidelines-intro.txt").read_text()
    assert "violating user’s access" in intro
    aup = (CORPUS / "wechat-aup.txt").read_text()
    assert "1.2 ENFORCEMENT AND VIOLATION" in aup and "Last updated: 2023-08-01" in aup


def test_a_heading_repeated_three_times_is_written_once():
    guidelines = (CORPUS / "wechat-community-guidelines.txt").read_text()
    assert "### Cyberbullying\n" in guidelines
    assert "### Copyright and Trademark Infringement\n" in guidelines


def test_clause_ids_are_unique_across_the_corpus(parsed):
    ids = [c.clause_id for _, _, clauses in parsed.values() for c in clauses]
    assert len(ids) == len(set(ids))


# Counted by reading each source; see the comments for the arithmetic.
EXPECTED_COUNTS = {
    "weixin-standards": {
        "I. Usage Rules": 28,  # intro + (1 body, 1.1, 1.2, 1.2.1-8) + (2 body, 2.1-4) + (3 body, 3.1-4) + (4 body, p2, 4.1-4)
        "II. Content Rules": 166,  # 3 intro paragraphs + sections 1..13: 13+14+6+3+7+6+8+27+30+3+6+33+7
        "III. Standards of Weixin Group Usage": 6,
        "IV. Payment Rules": 4,
        "V. Penalties Imposed Against Violations": 4,
        "VI. Reporting and Appealing": 9,  # intro, 1 body, 2.1, 2.1.1, 2.1.2 + its 2 captions, 2.2, 2.2 p2
        "X. Links to Applicable Agreements": 6,
    },
    "wechat-aup": {
        "1. General Provisions": 13,
        "2. Violence and Crime": 18,  # intro, a-f, second intro, g-o, closing paragraph
        "7. Misuse of WeChat": 32,  # 7.1 + a-g, 7.2 + a-s, 7.3 body + a-c
        "8. Regulated Goods and Services": 7,
        "11. Political Propaganda Content": 14,
    },
    "wechat-community-guidelines": {
        "Fraud or Scams": 19,  # p1, b1, b2, a + 1-4, b + 1-2, c, d + 1-3, e, f, g
        "Nudity and Pornography": 51,  # p1, Nudity 17, Offering 5, Non-consensual 8, Child 15, Exception 5
        "Hate, spam or other inappropriate behavior": 42,
        "Violent content": 11,
        "Terrorism, violent extremism and other criminal behavior": 44,
        "Other Inappropriate Content": 11,
    },
    "wecom-penalties": {
        "2. Penalty rule #1": 8,  # 3 violations, intro, steps 1-3, note
        "3. Penalty rule #2": 4,
        "4. Penalty rule #3": 17,  # 14 violation types, the pointer to the usage guidelines, 2 punishment measures
    },
}


@pytest.mark.parametrize("document_id", sorted(EXPECTED_COUNTS))
def test_clause_counts_per_top_level_section(parsed, document_id):
    _, _, clauses = parsed[document_id]
    for section, expected in EXPECTED_COUNTS[document_id].items():
        actual = sum(1 for c in clauses if c.heading_path and c.heading_path[0] == section)
        assert actual == expected, (document_id, section)


@pytest.mark.parametrize(
    ("clause_id", "starts", "heading"),
    [
        ("weixin-standards/II.8.3", "8.3 Fraudulent information related to pyramid schemes", "II. Content Rules > 8. Fraudulent information"),
        ("weixin-standards/II.8.6/example-1", "Example 1: Under the guise of recruiting for high-paying part-time jobs", "II. Content Rules > 8. Fraudulent information"),
        ("weixin-standards/II.9.2", "9.2 Engaging in illegal practices such as document forgery", "II. Content Rules > 9. Content involving illegal goods"),
        ("weixin-standards/II.12.7", "12.7 Traffic-directing information contained in profile photos", "II. Content Rules > 12. Undesirable information"),
        ("weixin-standards/VI.2.1.1", "2.1.1 Customer Service Hotline: +86 755-83765566;", "VI. Reporting and Appealing > 1. Appealing against penalties"),
        ("wechat-aup/7.2.b", "b. use any automated robot, software, engine, crawler", "7. Misuse of WeChat"),
        ("wechat-aup/2.h", "h. Violent behavior - e.g., murder", "2. Violence and Crime"),
        ("wechat-community-guidelines/fraud-or-scams/a.1", "1) Financial scams (including", "Fraud or Scams"),
        ("wechat-community-guidelines/exception/b", "b) Female nipples displayed during breastfeeding", "Nudity and Pornography > Exception"),
        ("wechat-community-guidelines/gambling/b2.a", "a) Legitimate gambling-related content", "Hate, spam or other inappropriate behavior > Gambling"),
        ("wechat-community-guidelines/cyberbullying/h", "h) Sharing videos about bullying", "Safety of Minors > Cyberbullying"),
        ("wechat-community-guidelines/violence-and-threats/c", "c) Providing instruction on the manufacture", "Violent content > Violence and threats"),
        ("wecom-penalties/rule-3/use-plug-in", "Use plug-in", "4. Penalty rule #3 > 4.1 Corresponding violations"),
        ("wecom-penalties/rule-1/punishment/3", "3. The third violation will permanently prohibit", "2. Penalty rule #1 > 2.2 Punishment measures"),
        ("wechat-contraband-notice/grade-3", "3. For WeChat groups that violate laws", ""),
    ],
)
def test_named_clauses_have_the_right_text(parsed, clause_id, starts, heading):
    clause = next(c for _, _, cs in parsed.values() for c in cs if c.clause_id == clause_id)
    assert clause.text.startswith(starts)
    assert clause.heading == heading


def test_list_items_carry_their_parent_intro(parsed):
    clauses = {c.clause_id: c for c in parsed["wechat-aup"][2]}
    assert clauses["wechat-aup/2.b"].parent_text.startswith("We prohibit violent, criminal, illegal")
    assert clauses["wechat-aup/2.o"].parent_text.startswith("We also prohibit any organization")
    weixin = {c.clause_id: c for c in parsed["weixin-standards"][2]}
    assert weixin["weixin-standards/II.8.6/example-2"].parent_id == "weixin-standards/II.8.6"
    assert weixin["weixin-standards/II.9.1.5"].parent_text.startswith("9.1 Content involving goods")


def test_wecom_violation_keeps_title_and_description(parsed):
    clause = next(c for c in parsed["wecom-penalties"][2] if c.clause_id == "wecom-penalties/rule-3/send-gambling-content")
    assert "Send gambling content" in clause.text and "selling gambling equipment" in clause.text


def test_example_continuation_lines_stay_with_their_example(parsed):
    clause = next(c for c in parsed["weixin-standards"][2] if c.clause_id == "weixin-standards/II.2.2/example")
    assert clause.text.endswith("Please forward this quickly!")


@pytest.mark.parametrize(
    ("clause_id", "stance"),
    [
        ("weixin-standards/II.9.1.5", "prohibits"),
        ("weixin-standards/II.8.6/example-3", "prohibits"),
        ("weixin-standards/II.12.3/example-2", "prohibits"),
        ("weixin-standards/II.9.4/p2", "definition"),
        ("weixin-standards/V.1", "penalty"),
        ("weixin-standards/VI.2.1", "procedure"),
        ("wechat-aup/1.2.d", "penalty"),
        ("wechat-aup/11.2", "definition"),
        ("wechat-community-guidelines/exception/b", "exception"),
        ("wechat-community-guidelines/gambling/b2.b", "exception"),
        ("wechat-community-guidelines/gambling/b1.c", "prohibits"),
        ("wechat-community-guidelines/spam/b1", "prohibits"),
        ("wechat-community-guidelines/harassment-and-bullying/b1", "definition"),
        ("wechat-community-guidelines/child-pornography/b2", "procedure"),
        ("wecom-penalties/rule-3/use-plug-in", "prohibits"),
        ("wecom-penalties/rule-1/punishment/1", "penalty"),
        ("wecom-penalties/faq/5.3/b2", "procedure"),
        ("wechat-contraband-notice/grade-2", "penalty"),
        ("wechat-contraband-notice/p5", "prohibits"),
        ("wechat-contraband-notice/p7", "context"),
    ],
)
def test_stance_labels(parsed, clause_id, stance):
    clause = next(c for _, _, cs in parsed.values() for c in cs if c.clause_id == clause_id)
    assert clause.stance == stance
