"""Retrieval with the real packaged model: hybrid search ranks the deciding clause high."""

from __future__ import annotations

import pytest

from policyqa import InvalidInputError, check_text

pytestmark = pytest.mark.slow


def _ids(index, query, k=5):
    return [hit.clause.clause_id for hit in index.search(query, top_k=k)]


def test_fake_id_cards_rank_the_weixin_forgery_clause_first(real_index):
    hit = real_index.search("selling fake ID cards", top_k=3)[0]
    assert hit.clause.clause_id == "weixin-standards/II.9.2"
    assert hit.clause.heading == "II. Content Rules > 9. Content involving illegal goods"
    assert hit.dense_score is not None and hit.fused_score > 0


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Can a seller put a QR code to her group in her profile photo?", "weixin-standards/II.12.7"),
        ("photos of breastfeeding", "wechat-community-guidelines/exception/b"),
        ("reverse engineering the WeChat app", "wechat-aup/7.2.g"),
        ("how do I appeal a blocked Weixin account", "weixin-standards/VI"),
    ],
)
def test_queries_find_their_deciding_clause_in_the_top_five(real_index, query, expected):
    """`expected` is a clause id, or a section id whose every clause would do."""
    assert any(i == expected or i.startswith(expected + ".") or i.startswith(expected + "/") for i in _ids(real_index, query))


def test_hits_report_each_retriever(real_index):
    hits = real_index.search("gambling red packets", top_k=10)
    assert [h.rank for h in hits] == list(range(1, 11))
    assert any(h.bm25_rank is not None for h in hits) and any(h.dense_rank is not None for h in hits)
    assert hits == sorted(hits, key=lambda h: -h.fused_score)


def test_a_word_the_corpus_never_uses_still_gets_dense_hits(real_index):
    hits = real_index.search("zxqv", top_k=3)
    assert len(hits) == 3 and all(h.bm25_rank is None for h in hits)


def test_other_languages_are_searched_not_crashed_on(real_index):
    assert len(real_index.search("出售假身份证", top_k=3)) == 3


@pytest.mark.parametrize(
    ("bad", "message"),
    [("", "empty"), ("   \n ", "empty"), ("x" * 1_000_000, "limit"), (b"\x00\xff\xfe\x01" * 100, "binary"),
     ("\x00\x01\x02\x03 abc", "binary"), (42, "must be text")],
)
def test_bad_queries_get_a_clear_error(real_index, bad, message):
    with pytest.raises(InvalidInputError, match=message):
        real_index.search(bad)
    with pytest.raises(InvalidInputError, match=message):
        check_text(bad, max_chars=20_000)


def test_concurrent_searches_are_safe(real_index):
    from concurrent.futures import ThreadPoolExecutor

    queries = ["selling fake ID cards", "gambling", "nude photos", "phishing link"] * 4
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda q: _ids(real_index, q, 3), queries))
    assert results[:4] == results[4:8]


def test_with_settings_changes_query_time_choices_only_on_the_copy(real_index):
    dense_only = real_index.with_settings(lexical_weight=0.0)
    bm25_only = real_index.with_settings(dense_weight=0.0)
    query = "fapiao for sale"
    assert all(h.dense_rank is not None for h in dense_only.search(query, top_k=5))
    assert all(h.bm25_rank is not None for h in bm25_only.search(query, top_k=5))
    assert real_index.settings.lexical_weight == 1.0 and real_index.settings.dense_weight == 2.0
    assert "invoices" in real_index.expand(query)  # corpus/chat_glossary.json: fapiao -> invoices
    expanded = bm25_only.search(query, top_k=3)
    plain = bm25_only.with_settings(expand_queries=False).search(query, top_k=3)
    assert "invoice" in expanded[0].clause.text.lower()
    assert [h.clause.clause_id for h in expanded] != [h.clause.clause_id for h in plain]
