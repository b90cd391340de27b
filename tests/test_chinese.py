"""The Chinese channel's pure parts: language routing, normalisation, the n-gram space, votes and quotes.
No model is loaded here; the real rulings are in test_ruling.py."""

from __future__ import annotations

import re

import numpy as np
import pytest

from policyqa import CorpusError
from policyqa._chinese import (ZH_GLOSSARY, ChineseBank, ChineseEvidence, NgramSpace, language_of, ngrams, normalise,
                               policy_words, read_zh_glossary)
from policyqa._config import PROJECT_ROOT
from policyqa._corpus import normalise_for_match
from policyqa._training import TrainingItem


@pytest.mark.parametrize(("text", "lang"), [
    ("selling fake ID cards, add my wx", "en"),
    ("在？帮下忙，借个收款码…用完给你发红包🧧", "zh"),
    ("新到一批货，同城配送，要的私聊", "zh"),
    ("加我vx 1688, fake ID 全国都能办", "zh"),  # mixed: Han characters are a fifth or more of the letters
    ("出售帳號，價格優惠", "zh"),  # Traditional
    ("偽造の身分証を売ります", "other"),  # Japanese: kana
    ("가짜 신분증 팝니다", "other"),  # Korean
    ("Продаю поддельные паспорта", "other"),
    ("🧧🧧 12345 !!!", "other"),
])
def test_language_routing_by_script(text, lang):
    assert language_of(text) == lang


def test_traditional_and_full_width_forms_match_simplified():
    assert normalise("出售賬號，ＶＸ聯繫") == normalise("出售账号,vx联系")


def test_ngram_space_matches_scikit_learn():
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [normalise(t) for t in ["出售假身份证加我微信", "今晚同城配送私聊", "身份证丢了怎么补办", "加我vx"]]
    ours = NgramSpace.fit(texts)
    theirs = TfidfVectorizer(analyzer=lambda t: list(ngrams(t).elements()), sublinear_tf=True).fit(texts)
    assert ours.vocabulary == theirs.vocabulary_
    query = [normalise("出售身份证，私聊vx"), normalise("完全无关的ξ")]
    np.testing.assert_allclose(ours.transform(query).toarray(), theirs.transform(query).toarray(), atol=1e-9)


def test_punctuation_and_emoji_are_not_features():
    assert set(ngrams("借个码…🧧好")) == {"借", "个", "码", "借个", "个码", "好"}


def _item(n: int, text: str, label: str, clause: str | None = None, kind: str = "message") -> TrainingItem:
    refs = [{"clause_id": clause, "quote": "identity cards"}] if clause else []
    return TrainingItem(id=f"zh-{n}", kind=kind, text=text, label=label, clauses=refs, lang="zh")


@pytest.fixture
def bank() -> ChineseBank:
    items = [_item(0, "出售假身份证，加我微信", "violation", "a/1"),
             _item(1, "办证，身份证驾驶证都能做", "violation", "a/1"),
             _item(2, "代开发票，税点低", "violation", "b/2"),
             _item(3, "身份证丢了去派出所补办", "no_violation"),
             _item(4, "今天天气不错", "no_violation")]
    texts = [normalise(i.text) for i in items]
    space = NgramSpace.fit(texts)
    return ChineseBank(items, np.arange(len(items)) % 5, space, space.transform(texts), {"a/1": 0, "b/2": 1})


def test_features_and_votes_follow_the_nearest_items(bank):
    ev = bank.gather(["卖假身份证，私聊"])[0]
    features = bank.features(ev)
    assert features["nearest_violation"] > features["nearest_benign"]
    assert features["vote_violation"] > 0.5
    votes = bank.clause_votes(ev, "prohibit")
    assert votes[0][0] == 0 and bank.items[votes[0][2]].clause_ids == ("a/1",)
    assert sum(v for _, v, _ in votes) == pytest.approx(1.0)


def test_a_left_out_fold_is_not_seen(bank):
    ev = bank.gather(["出售假身份证，加我微信"], fold=0)[0]
    assert ev.sims[0] == -1.0 and ev.sims[1:].max() < 1.0


def test_unrecognised_text_is_flagged(bank):
    assert not bank.gather(["ξψω qwerty"])[0].recognised
    assert bank.gather(["出售假身份证"])[0].recognised


def test_riskiest_sentence_is_the_violating_one(bank):
    whole = bank.gather(["今天天气不错。出售假身份证，加我微信"])[0]
    parts = bank.gather(["今天天气不错。", "出售假身份证，加我微信"])
    assert bank.riskiest_sentence(whole, parts).text == "出售假身份证，加我微信"


def test_quote_is_cut_from_the_clause_text(bank):
    from policyqa._models import Clause

    clause = Clause(clause_id="a/1", document_id="a", document_title="A", heading_path=("A",),
                    text="Forged identity cards, passports.", stance="prohibits", start=0, end=33)
    spans = [(0, 22), (23, 33)]
    assert bank.quote_for(clause, 0, spans) == "identity cards"  # the item's own quote, verbatim in the clause
    other = clause.model_copy(update={"text": "Forged Identity  Cards, passports."})  # the quote matches only normalised
    assert bank.quote_for(other, 0, spans) == other.text[0:22]
    ev = ChineseEvidence("x", np.zeros(5))
    assert not ev.recognised


@pytest.fixture(scope="module")
def tiny_multilingual_model(tmp_path_factory) -> str:
    """A tiny, randomly initialised BERT sentence-transformers folder whose vocabulary holds Chinese
    characters: stands in for a local multilingual model (nothing can be downloaded here)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-multilingual")
    raw = folder / "raw"
    raw.mkdir()
    chars = sorted(set("出售假身份证加我微信同城配送私聊收款码红包借帮忙今天天气不错群里可以吗发票代开刷单跑分"))
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *"abcdefghijklmnopqrstuvwxyz0123456789"]
    (raw / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(raw / "vocab.txt")).save_pretrained(str(raw))
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(str(raw))
    transformer = models.Transformer(str(raw), max_seq_length=128)
    model = SentenceTransformer(modules=[transformer, models.Pooling(32, "mean"), models.Normalize()], device="cpu")
    model.save(str(folder / "model"))
    return str(folder / "model")


@pytest.mark.slow
def test_a_local_multilingual_model_serves_chinese_search_and_rulings(tiny_multilingual_model, small_corpus, tmp_path):
    """The path a user with a multilingual model takes: POLICYQA_EMBEDDING_MODEL points at its folder,
    and POLICYQA_CHINESE_DENSE_CANDIDATES lets its Chinese vectors into search."""
    from policyqa import PolicyIndex, judge, load_settings

    settings = load_settings(home=tmp_path / "home", corpus_dir=small_corpus, embedding_model=tiny_multilingual_model,
                             tune_query_model=False, chinese_dense_candidates=50)
    index = PolicyIndex(settings)
    index.build()
    index.load()
    assert index.fingerprint["model"].startswith(tiny_multilingual_model)
    hits = index.search("出售假身份证，加我微信", top_k=5)
    assert len(hits) == 5 and any(h.dense_score is not None for h in hits)
    ruling = judge("出售假身份证，加我微信", index=index)
    assert ruling.engine == "offline" and "neither English nor Chinese" not in ruling.summary
    for v in ruling.violations:
        assert v.quote in v.text and v.message_span in ruling.message


def test_policy_words_take_the_longest_term_and_latin_keys_only_as_words():
    glossary = {normalise(k): v for k, v in {"代开": "invoices", "代开发票": "invoices forged", "发票": "invoices",
                                            "vx": "WeChat", "冰毒": "drugs"}.items()}
    assert policy_words("有需要代開發票的加我vx，还有冰毒", glossary) == "invoices forged WeChat drugs"  # Traditional too
    assert policy_words("avxb", glossary) == ""  # "vx" inside a Latin word is not the key
    assert policy_words("今天天气好", glossary) == "" and policy_words("代开", {}) == ""


@pytest.mark.parametrize(("content", "problem"), [
    ("{not json", "is not a UTF-8 JSON object"),
    ("[1, 2]", "is not a UTF-8 JSON object"),
    ('{"terms": {"赌博": ""}}', "must hold"),
    ('{"terms": ["赌博"]}', "must hold"),
    ('{"terms": {"赌博": "gambling"}, "signals": ["私聊"]}', "must list keys"),
])
def test_a_broken_zh_glossary_is_a_corpus_error_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "zh_glossary.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CorpusError, match=problem) as caught:
        read_zh_glossary(path)
    assert "zh_glossary.json" in str(caught.value)
    assert read_zh_glossary(tmp_path / "absent.json") == {}


def test_signal_terms_are_left_out_of_the_glossary(tmp_path):
    path = tmp_path / "zh_glossary.json"
    path.write_text('{"terms": {"赌博": "gambling", "私聊": "private chat"}, "signals": ["私聊"]}', encoding="utf-8")
    assert read_zh_glossary(path) == {"赌博": "gambling"}
    assert policy_words("私聊，价格优惠", read_zh_glossary(path)) == ""


def test_the_zh_glossary_maps_to_words_the_policies_use():
    """Every English word a Chinese term maps to occurs in a policy text, so BM25 can find it."""
    corpus = " ".join(normalise_for_match(p.read_text(encoding="utf-8")) for p in (PROJECT_ROOT / "corpus").glob("*.txt"))
    words = set(re.findall(r"[a-z0-9]+", corpus))
    glossary = read_zh_glossary(PROJECT_ROOT / "corpus" / ZH_GLOSSARY)
    assert len(glossary) >= 300
    missing = sorted({w for value in glossary.values() for w in value.lower().split() if w not in words})
    assert not missing, missing[:20]


def test_citation_candidates_carry_the_vote_and_how_close_each_clause_is(bank):
    ev = bank.gather(["卖假身份证，私聊，代开发票"])[0]
    candidates = bank.clause_candidates(ev, "prohibit", out_of_scope={1})
    assert [pos for pos, _, _ in candidates] == [pos for pos, _, _ in bank.clause_votes(ev, "prohibit")]
    lead = candidates[0][2]
    assert lead["rank"] == 0 and lead["vote_vs_lead"] == 1.0 and lead["sim_gap"] == 0.0
    assert all(features["out_of_scope"] == float(pos == 1) for pos, _, features in candidates)
    assert all(ev.sims[item] == features["sim"] for _, item, features in candidates)


def test_the_citation_ranker_learns_from_items_that_never_see_themselves():
    """Each item's candidates come with its own fold left out, and a candidate is right when the
    item names the clause or quotes its words: what gold means in evaluation."""
    from policyqa._learning import chinese_citation_rows
    from policyqa._models import Clause

    items = [_item(0, "出售假身份证，加我微信", "violation", "a/1"),
             _item(1, "办假身份证，加我微信", "violation", "a/1"),
             TrainingItem(id="zh-2", kind="message", text="出售假发票，加我微信", label="violation", lang="zh",
                          clauses=[{"clause_id": "b/2", "quote": "invoices"}]),
             _item(3, "今天天气不错", "no_violation")]
    texts = [normalise(i.text) for i in items]
    space = NgramSpace.fit(texts)
    small = ChineseBank(items, np.arange(len(items)), space, space.transform(texts), {"a/1": 0, "b/2": 1})
    clauses = [Clause(clause_id=cid, document_id=cid[0], document_title=cid[0], heading_path=(cid[0],), text=text,
                      stance="prohibits", start=0, end=len(text))
               for cid, text in [("a/1", "Forged identity cards."), ("b/2", "Selling invoices.")]]
    rows, labels = chinese_citation_rows(small, clauses, lambda text: set(), ("prohibit",))
    assert all(row["sim"] < 0.999 for row in rows["prohibit"])  # no item finds itself
    # item 0 sees a/1 (item 1) and b/2 (item 2); item 1 the same; item 2 sees a/1 only
    assert sorted(zip(labels["prohibit"], (row["rank"] for row in rows["prohibit"]))) == [(0, 0.0), (0, 1.0), (0, 1.0),
                                                                                         (1, 0.0), (1, 0.0)]


def test_content_length_counts_letters_and_digits_only():
    from policyqa._chinese import content_length

    assert content_length("🧧出售🧧！！") == 2
    assert content_length("加我vx 1688") == 8
    assert content_length("…… 🙏") == 0
