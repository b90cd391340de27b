"""Offline ask/judge end to end: the examples a new user tried (issue 8), each verdict class, abstention,
benign near-misses, spans, quotes and penalties. The examples were written from the policy texts, not
taken from the evaluation sets."""

from __future__ import annotations

import pytest

from policyqa import InvalidInputError, ask, judge
from policyqa._clauses import exception_spans, quote_spans
from policyqa._decision import Calibration
from policyqa._config import PROJECT_ROOT
from policyqa._penalties import penalty_clause_ids
from policyqa._profiles import PostingContext, load_catalogue, load_profiles
from policyqa._ruling import OfflineEngine

# --- fast: pure functions -------------------------------------------------------------------------


_PROFILES = load_profiles(PROJECT_ROOT / "corpus")
_CATALOGUE = load_catalogue(PROJECT_ROOT / "corpus")


def _penalties(violated: list[str], message: str, product: str | None = None, surface: str | None = None) -> list[str]:
    context = PostingContext(product=product, surface=surface)
    return [cid for cid, _ in penalty_clause_ids(violated, message, _PROFILES, _CATALOGUE, context)]


def test_penalties_follow_the_wecom_rule_that_was_broken():
    assert _penalties(["wecom-penalties/rule-1/send-harassing-content"], "buy now!!") == [
        "wecom-penalties/rule-1/punishment/1", "wecom-penalties/rule-1/punishment/2",
        "wecom-penalties/rule-1/punishment/3", "wecom-penalties/rule-1/punishment/note"]
    assert _penalties(["wecom-penalties/rule-3/use-plug-in"], "x") == [
        "wecom-penalties/rule-3/punishment/b1", "wecom-penalties/rule-3/punishment/b2"]


def test_illegal_goods_add_the_contraband_grades_and_groups_add_group_penalties():
    ids = _penalties(["weixin-standards/II.9.1.12"], "selling invoices in our group")
    assert ids[0] == "weixin-standards/V.1"
    assert {"wechat-contraband-notice/grade-1", "wechat-contraband-notice/grade-2", "weixin-standards/V.2",
            "wechat-contraband-notice/grade-3"} <= set(ids)
    assert _penalties(["wechat-aup/5.a"], "x")[0] == "wechat-aup/1.2"
    assert _penalties(["wechat-community-guidelines/gambling/b1.a"], "x") == ["wechat-community-guidelines/introduction/p3"]


def test_a_wechat_violation_on_a_linked_wecom_account_cites_rule_2():
    assert "wecom-penalties/rule-2/punishment/b1" in _penalties(["weixin-standards/II.4"], "posted from my WeCom work account")


def test_penalties_come_from_the_documents_governing_the_product():
    fapiao = "selling fapiao invoices, any amount, add me"
    weixin = _penalties(["weixin-standards/II.9.1.12"], fapiao, product="weixin", surface="group")
    assert weixin == ["weixin-standards/V.1", "weixin-standards/V.2", "wechat-contraband-notice/grade-1",
                      "wechat-contraband-notice/grade-2", "wechat-contraband-notice/grade-3"]
    # a one-to-one chat is not a group, whatever the words say; WeCom's rules never govern Weixin
    chat = _penalties(["weixin-standards/II.9.1.12"], "invoices for our group", product="weixin", surface="chat")
    assert "weixin-standards/V.2" not in chat and "wechat-contraband-notice/grade-3" not in chat
    assert not any(cid.startswith("wecom-penalties/") for cid in weixin + chat)
    wecom = _penalties(["wecom-penalties/rule-3/sending-illegal-content"], fapiao, product="wecom")
    assert wecom == ["wecom-penalties/rule-3/punishment/b1", "wecom-penalties/rule-3/punishment/b2"]
    # a Weixin clause under a WeCom context sets no penalty: only WeCom's rules govern WeCom
    assert _penalties(["weixin-standards/II.9.1.12"], fapiao, product="wecom") == []


def test_every_penalty_says_why_it_applies():
    rows = penalty_clause_ids(["weixin-standards/II.9.1.12"], "fapiao in the group", _PROFILES, _CATALOGUE)
    assert rows and all(why.strip() for _, why in rows)


def test_quote_spans_are_verbatim_and_do_not_split_numbers():
    text = "12.5 Any other undesirable information that violates Tencent's Service Agreement, Platform Agreement, and Feature Agreement in any form."
    spans = [text[a:b] for a, b in quote_spans(text)]
    assert all(span in text for span in spans)
    assert not any(span.startswith("5 Any") for span in spans)


def test_exception_spans_are_found_inside_prohibiting_clauses():
    text = ("h. Violent behavior - e.g., murder, injury to another person or animal "
            "(excluding lawful activities such as boxing, hunting, or food preparation);")
    assert [text[a:b] for a, b in exception_spans(text)] == [
        "(excluding lawful activities such as boxing, hunting, or food preparation)"]


# --- slow: the examples from the issue, as a careful reader would rule on them ------------------------


@pytest.mark.slow
def test_selling_your_own_phone_is_not_covered(real_index):
    answer = ask("Can I sell my old iPhone in a WeChat group?", index=real_index)
    assert answer.verdict == "not_covered" and not answer.citations
    assert "wechat-aup/7.2.h" not in [c.clause_id for c in answer.citations]


@pytest.mark.slow
def test_a_lucky_draw_that_requires_sharing_to_moments_is_prohibited(real_index):
    answer = ask("can my shop run a lucky draw where people share to moments to enter?", index=real_index)
    assert answer.verdict == "prohibited"
    assert answer.citations[0].clause_id in {"weixin-standards/II.12.1.1", "wecom-penalties/rule-1/send-inducing-sharing-content"}


@pytest.mark.slow
def test_share_to_moments_to_win_is_a_violation_of_the_inducement_rule(real_index):
    ruling = judge("Like and share this post to Moments to win a free iPad!", index=real_index)
    assert ruling.verdict == "violation"
    assert ruling.violations[0].clause_id in {"weixin-standards/II.12.1.1", "weixin-standards/II.12.1"}


@pytest.mark.slow
def test_prescription_free_weight_loss_pills_are_a_violation(real_index):
    ruling = judge("Weight loss pills, lose 10kg in a week, no prescription needed, DM me", index=real_index)
    assert ruling.verdict == "violation"
    assert ruling.violations[0].clause_id in {
        "wechat-community-guidelines/sale-or-transfer-of-regulated-goods-or-services/h",  # "... weight loss products"
        "weixin-standards/II.13.2",  # "falsely advertising products ... weight loss"
        "weixin-standards/II.8.2",
    }


@pytest.mark.slow
def test_wecom_harassing_ads_are_answered_by_rule_1_and_its_penalties(real_index):
    answer = ask("What happens to a WeCom account that sends harassing ads?", index=real_index)
    assert answer.verdict == "informational"
    assert answer.citations[0].clause_id.startswith("wecom-penalties/rule-1/")


IDENTITY_CARD_RULES = {"weixin-standards/II.9.2"}
"""II.9.2 names "trading of identity cards, passports"; the issue's miss was the generic group rule
(III.4) leading, and WeCom's rule #3 or the Guidelines' "counterfeit ... certificates or other
documents" would be vaguer leads."""


@pytest.mark.slow
def test_fake_id_cards_lead_with_the_identity_card_rule(real_index):
    ruling = judge("selling fake ID cards, any province, add my wx", index=real_index)
    assert ruling.verdict == "violation"
    cited = [v.clause_id for v in ruling.violations]
    assert cited[0] in IDENTITY_CARD_RULES and "weixin-standards/III.4" not in cited
    assert ruling.penalties and all(p.stance == "penalty" for p in ruling.penalties)


@pytest.mark.slow
def test_asking_about_fake_id_cards_in_a_group_cites_the_identity_card_rule(real_index):
    answer = ask("Can I sell fake ID cards in a WeChat group?", index=real_index)
    assert answer.verdict == "prohibited"
    cited = [c.clause_id for c in answer.citations]
    # "WeChat group": the Guidelines' "counterfeit ... certificates or other documents" may lead, but
    # the rule that names identity cards is cited, and the generic group rule is not the lead
    assert "weixin-standards/II.9.2" in cited and cited[0] in IDENTITY_CARD_RULES | {
        "wechat-community-guidelines/fraud-or-scams/b.2"}


@pytest.mark.slow
def test_a_group_qr_code_in_a_profile_photo_is_prohibited(real_index):
    answer = ask("Can a seller put a QR code to her group in her profile photo?", index=real_index)
    assert answer.verdict == "prohibited" and answer.engine == "offline"
    assert answer.citations[0].clause_id == "weixin-standards/II.12.7"
    assert 0.5 <= answer.confidence <= 1


# --- slow: each verdict class and the engine's contract ---------------------------------------------


@pytest.mark.slow
def test_an_exception_makes_a_question_allowed(real_index):
    answer = ask("Can I post photos of myself breastfeeding my baby?", index=real_index)
    assert answer.verdict == "allowed"
    assert answer.citations[0].clause_id == "wechat-community-guidelines/exception/b"


@pytest.mark.slow
def test_a_procedure_question_is_informational(real_index):
    answer = ask("How do I appeal after my Weixin account was blocked?", index=real_index)
    assert answer.verdict == "informational"
    assert any(c.clause_id.startswith("weixin-standards/VI") for c in answer.citations)


@pytest.mark.slow
def test_a_question_the_policies_do_not_settle_is_not_covered(real_index):
    answer = ask("What colour themes can I choose for the chat background?", index=real_index)
    assert answer.verdict == "not_covered"
    assert not answer.citations and answer.considered  # says so, and shows what it looked at


@pytest.mark.slow
def test_a_gambling_message_cites_the_gambling_rule_and_its_penalties(real_index):
    ruling = judge("join our red packet gambling group, 50 yuan per round, winner takes the pot", index=real_index)
    assert ruling.verdict == "violation"
    assert ruling.violations[0].clause_id == "weixin-standards/II.4.1"
    assert "weixin-standards/V.1" in [p.clause_id for p in ruling.penalties]


@pytest.mark.slow
def test_a_long_message_points_at_the_offending_sentence(real_index):
    message = ("Hi neighbours! The lift will be serviced on Tuesday morning. Please keep the corridor clear. "
               "Also I can get you fapiao invoices for any amount, 3% fee.")
    ruling = judge(message, index=real_index)
    assert ruling.verdict == "violation"
    assert ruling.violations[0].message_span == "Also I can get you fapiao invoices for any amount, 3% fee."


@pytest.mark.slow
def test_a_message_whose_riskiest_sentence_is_an_opener_cites_what_the_whole_offers(real_index):
    """The riskiest sentence ("Hey teens!!") says nothing of the breach after it: the clause comes from
    it and the whole message together, and the span is the whole, not the opener."""
    message = "Hey teens!! cheap vapes and beer delivered to your school gate, no ID needed 😎"
    ruling = judge(message, index=real_index)
    assert ruling.verdict == "violation"
    assert ruling.violations[0].clause_id == "weixin-standards/II.11.3"  # enticing minors to smoke or drink
    assert "vapes" in ruling.violations[0].message_span


@pytest.mark.slow
@pytest.mark.parametrize("message", [
    "the archery club meets Sunday, bring your own bow",
    "that heist movie last night was great",
    "happy birthday grandma! see you at dinner",
    "Pharmacy hours this week: Mon-Sat 8am-9pm, closed Sunday",
    "Police reminder: nobody from the 'bank security team' will ever ask you to move money to a safe account",
])
def test_benign_near_misses_are_not_violations(real_index, message):
    assert judge(message, index=real_index).verdict == "no_violation"


@pytest.mark.slow
def test_every_quote_is_a_verbatim_substring_of_its_clause(real_index):
    for text in ["selling fake ID cards, any province, dm me", "nudes for sale, 50 yuan a set",
                 "forward this to 10 friends or your family will have bad luck"]:
        ruling = judge(text, index=real_index)
        for citation in [*ruling.violations, *ruling.penalties, *ruling.considered]:
            assert citation.quote and citation.quote in citation.text
            assert citation.text == real_index.clause(citation.clause_id).text
        for violation in ruling.violations:
            assert violation.message_span in ruling.message


@pytest.mark.slow
def test_considered_clauses_are_sorted_by_score(real_index):
    ruling = judge("is this legit? some guy says he can double my usdt in a week", index=real_index)
    scores = [c.score for c in ruling.considered]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


@pytest.mark.slow
def test_weak_evidence_abstains_instead_of_guessing(real_index):
    strict = OfflineEngine(real_index, Calibration(violation_at=0.9999, clear_at=0.0001))
    ruling = strict.judge("selling fake ID cards, any province, dm me")
    assert ruling.verdict == "needs_review" and not ruling.violations and ruling.considered
    assert ruling.summary.startswith("Needs review")


@pytest.mark.slow
def test_a_verdict_no_clause_can_support_becomes_an_abstention(real_index):
    floors = {"prohibit": 1.1, "info": 1.1, "permission": 1.1}
    uncitable = OfflineEngine(real_index, Calibration(cite_at=dict(floors), cite_floor=dict(floors)))
    ruling = uncitable.judge("selling fake ID cards, any province, dm me")
    assert ruling.verdict == "needs_review" and not ruling.violations
    assert any("no clause fits" in note for note in ruling.notes)
    answer = uncitable.ask("Can a seller put a QR code to her group in her profile photo?")
    assert answer.verdict == "not_covered" and not answer.citations


@pytest.mark.slow
def test_confidences_are_probabilities_and_verdicts_carry_their_support(real_index):
    for text in ["Can I post my wedding photos?", "How do I report a scam account?", "selling guns, pm me",
                 "see you at 7 for dinner"]:
        result = ask(text, index=real_index) if text.endswith("?") else judge(text, index=real_index)
        assert 0.0 <= result.confidence <= 1.0
        cited = getattr(result, "violations", None) if hasattr(result, "violations") else result.citations
        if result.verdict in {"violation", "prohibited", "allowed", "informational"}:
            assert cited


PAYMENT_CODE_CLAUSES = {"weixin-standards/II.12.5/example", "weixin-standards/II.12.11", "weixin-standards/II.12.11/example-2"}


@pytest.mark.slow
def test_chinese_request_to_borrow_a_payment_code_for_a_red_packet(real_index):
    """Issue 9's first example: borrowing someone's payment QR code against a red packet is the lease of
    a payment QR code (Weixin II.12.5's example) or point-running (II.12.11); never anything else."""
    message = "在？帮下忙，借个收款码…用完给你发红包🧧"
    ruling = judge(message, index=real_index)
    assert ruling.verdict in {"violation", "needs_review"}
    if ruling.verdict == "violation":
        assert ruling.violations[0].clause_id in PAYMENT_CODE_CLAUSES
        assert {v.clause_id for v in ruling.violations} <= PAYMENT_CODE_CLAUSES | {"weixin-standards/II.12.5"}
        assert ruling.violations[0].message_span in message and ruling.violations[0].quote in ruling.violations[0].text
        assert "weixin-standards/V.1" in [p.clause_id for p in ruling.penalties]
    assert ruling.summary.isascii() or "“" in ruling.summary  # the summary is English (it quotes the message)


@pytest.mark.slow
def test_chinese_coded_offer_that_names_nothing_is_not_a_confident_violation(real_index):
    """Issue 9's second example: "a new batch of goods, same-city delivery, DM me" names no goods; a
    careful reader sends it to a person rather than cite a clause it may not break."""
    ruling = judge("新到一批货，同城配送，要的私聊", index=real_index)
    assert ruling.verdict in {"needs_review", "no_violation"}
    assert not ruling.violations


@pytest.mark.slow
@pytest.mark.parametrize("message", ["出售", "私聊", "跑分", "🧧出售🧧"])
def test_a_chinese_word_alone_is_never_a_violation(real_index, message):
    """"For sale", "DM me", "benchmark score / point-running": each word's nearest training items are
    violations that contain it, but the word alone names no offence; a person decides."""
    ruling = judge(message, index=real_index)
    assert ruling.verdict == "needs_review" and not ruling.violations


@pytest.mark.slow
@pytest.mark.parametrize("message", ["DM me", "add my wx", "sell fake IDs 🔥"])
def test_a_few_english_words_alone_are_never_a_violation(real_index, message):
    """Contact phrases end many training violations, but alone they name no offence; a person decides.
    (Before the guard, "DM me" and "add my wx" were violations at 0.83 and 0.96.)"""
    ruling = judge(message, index=real_index)
    assert ruling.verdict != "violation" and not ruling.violations


def test_english_words_counts_latin_words_only():
    from policyqa._ruling import english_words

    assert english_words("DM me") == 2
    assert english_words("add my wx 🧧!!") == 3
    assert english_words("don't sell fake IDs, 100 yuan") == 6
    assert english_words("出售假身份证") == 0


@pytest.mark.slow
def test_chinese_fake_id_offer_leads_with_the_identity_card_clause(real_index):
    ruling = judge("出售假身份证，加我微信", index=real_index)
    assert ruling.verdict == "violation"
    assert ruling.violations[0].clause_id == "weixin-standards/II.9.2"
    assert ruling.violations[0].message_span == "出售假身份证，加我微信"


@pytest.mark.slow
def test_a_chinese_violation_no_training_item_is_close_to_cites_through_the_glossary(real_index, monkeypatch):
    """With no Chinese training item close enough to cite from, the clauses come from the English
    policy words of the glossary terms (corpus/zh_glossary.json: 代开发票 -> invoices); without the
    glossary the same message goes to a person."""
    from policyqa._ruling import GLOSSARY_REASON, offline_engine

    engine = offline_engine(real_index)
    message = "兄弟们，代开发票，各行业都有，点数低，加我vx"
    monkeypatch.setattr(engine, "chinese_citations", lambda *args, **kwargs: [])
    ruling = engine.judge(message)
    assert ruling.verdict == "violation"
    assert ruling.violations and all(v.reason == GLOSSARY_REASON for v in ruling.violations)
    lead = ruling.violations[0]
    assert "invoice" in lead.text.lower() and lead.quote in lead.text and lead.message_span in message
    monkeypatch.setattr(real_index, "zh_glossary", {})
    held = engine.judge(message)
    assert held.verdict == "needs_review" and not held.violations


@pytest.mark.slow
def test_a_chinese_violation_cites_from_the_next_sentence_when_the_riskiest_cites_nothing(real_index, monkeypatch):
    """The riskiest sentence is chosen against one-sentence items and can be a harmless opener; when it
    cites nothing the other sentences are tried, and the span is the sentence the clause came from."""
    from policyqa._ruling import offline_engine

    engine = offline_engine(real_index)
    message = "今天天气不错。出售假身份证，加我微信"
    opener, offer = "今天天气不错。", "出售假身份证，加我微信"
    real = engine.chinese_citations
    tried = []

    def only_the_offer(family, evidence, cal, context=None):
        tried.append(evidence.text)
        return real(family, evidence, cal, context) if evidence.text == offer else []

    monkeypatch.setattr(engine, "assess_chinese", _with_riskiest(engine.assess_chinese, opener))
    monkeypatch.setattr(engine, "chinese_citations", only_the_offer)
    ruling = engine.judge(message)
    assert tried[:2] == [opener, offer]
    assert ruling.verdict == "violation"
    assert ruling.violations[0].clause_id == "weixin-standards/II.9.2"
    assert {v.message_span for v in ruling.violations} == {offer}


def _with_riskiest(assess, text):
    """assess_chinese, with the sentence `text` made the riskiest (as a misjudged opener would be)."""
    import dataclasses

    def patched(message, kind):
        a = assess(message, kind)
        segment = next(p for p in a.parts if p.text == text)
        return dataclasses.replace(a, segment=segment)
    return patched


@pytest.mark.slow
def test_chinese_multi_sentence_message_points_at_the_bad_sentence(real_index):
    ruling = judge("今天天气不错。出售假身份证，加我微信", index=real_index)
    assert ruling.verdict == "violation"
    assert ruling.violations[0].message_span == "出售假身份证，加我微信"


@pytest.mark.slow
@pytest.mark.parametrize("message", ["今晚小区停水，大家提前储水", "身份证丢了去哪补办？", "生日快乐🎂红包收好"])
def test_everyday_chinese_messages_are_not_violations(real_index, message):
    assert judge(message, index=real_index).verdict == "no_violation"


@pytest.mark.slow
def test_a_harmless_opener_of_training_violations_is_never_ruled_a_violation(real_index):
    """"今天天气不错。" opens several multi-sentence training violations, so the whole-message evidence
    leans their way; the sentence-level evidence holds it back. Known weakness: it may go to a person."""
    ruling = judge("今天天气不错。", index=real_index)
    assert ruling.verdict in {"no_violation", "needs_review"} and not ruling.violations


@pytest.mark.slow
def test_chinese_questions_cite_the_english_clause(real_index):
    answer = ask("可以在头像里放群二维码吗？", index=real_index)
    assert answer.verdict == "prohibited" and answer.citations[0].clause_id == "weixin-standards/II.12.7"
    assert answer.citations[0].quote in answer.citations[0].text
    traditional = ask("可以在頭像裡放群二維碼嗎？", index=real_index)
    assert traditional.verdict == "prohibited" and traditional.citations[0].clause_id == "weixin-standards/II.12.7"
    assert ask("微信红包要交税吗？", index=real_index).verdict == "not_covered"


@pytest.mark.slow
def test_other_languages_and_gibberish_go_to_a_person(real_index):
    for message in ["Продаю поддельные паспорта, пишите в личку", "偽造の身分証を売ります、連絡ください"]:
        ruling = judge(message, index=real_index)
        assert ruling.verdict == "needs_review" and "neither English nor Chinese" in ruling.summary
    answer = ask("가짜 신분증을 팔아도 되나요?", index=real_index)
    assert answer.verdict == "not_covered" and answer.notes
    gibberish = judge("鑫淼犇骉魑魅魍魉饕餮", index=real_index)
    assert gibberish.verdict in {"needs_review", "no_violation"} and not gibberish.violations


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["", "  ", "x" * 1_000_000, b"\x00\x01\xff\xfe" * 64])
def test_bad_input_is_a_clear_error(real_index, bad):
    with pytest.raises(InvalidInputError):
        judge(bad, index=real_index)
    with pytest.raises(InvalidInputError):
        ask(bad, index=real_index)


# --- product context: where the message was posted (issue 10) ---------------------------------------

FAPIAO = "Hi everyone, I can issue fapiao invoices for any amount, 3% fee, add my wx"


@pytest.mark.slow
def test_fapiao_in_a_weixin_group_gets_weixin_penalties_only(real_index):
    ruling = judge(FAPIAO, product="weixin", surface="group", index=real_index)
    assert ruling.verdict == "violation", ruling.summary
    assert ruling.violations[0].clause_id == "weixin-standards/II.9.1.12"
    assert all("weixin" in v.products for v in ruling.violations)
    assert [p.clause_id for p in ruling.penalties] == [
        "weixin-standards/V.1", "weixin-standards/V.2", "wechat-contraband-notice/grade-1",
        "wechat-contraband-notice/grade-2", "wechat-contraband-notice/grade-3"]
    assert all(p.applies_because for p in ruling.penalties)


@pytest.mark.slow
def test_fapiao_in_a_weixin_chat_gets_no_group_penalty(real_index):
    ruling = judge(FAPIAO, product="weixin", surface="chat", index=real_index)
    assert ruling.verdict == "violation"
    assert [p.clause_id for p in ruling.penalties] == [
        "weixin-standards/V.1", "wechat-contraband-notice/grade-1", "wechat-contraband-notice/grade-2"]


@pytest.mark.slow
def test_the_same_message_in_wecom_gets_wecom_rule_3(real_index):
    ruling = judge(FAPIAO, product="wecom", index=real_index)
    assert ruling.verdict == "violation", ruling.summary
    assert ruling.violations[0].clause_id == "wecom-penalties/rule-3/sending-illegal-content"
    assert {v.clause_id.split("/")[0] for v in ruling.violations} == {"wecom-penalties"}
    assert [p.clause_id for p in ruling.penalties] == ["wecom-penalties/rule-3/punishment/b1",
                                                       "wecom-penalties/rule-3/punishment/b2"]


@pytest.mark.slow
def test_the_same_message_in_wechat_gets_wechat_rules_and_penalties(real_index):
    ruling = judge(FAPIAO, product="wechat", index=real_index)
    assert ruling.verdict == "violation", ruling.summary
    assert all("wechat" in v.products for v in ruling.violations)
    penalties = [p.clause_id for p in ruling.penalties]
    assert penalties and all(p.split("/")[0] in {"wechat-aup", "wechat-community-guidelines"} for p in penalties)


@pytest.mark.slow
def test_without_a_product_every_citation_says_which_products_it_governs(real_index):
    ruling = judge(FAPIAO, index=real_index)
    assert ruling.verdict == "violation"
    assert all(c.products for c in [*ruling.violations, *ruling.penalties, *ruling.considered])
    answer = ask("Can a WeCom employee add customers in bulk with a plug-in?", product="wecom", index=real_index)
    assert all("wecom" in c.products for c in [*answer.citations, *answer.considered])


@pytest.mark.slow
def test_an_unsure_chinese_ranker_defers_to_the_glossary(real_index, monkeypatch):
    """When the ranker's leading clause is below ZH_RANK_UNSURE_AT, the glossary's clauses are cited
    (when it has any); a confident lead keeps the ranker's clauses."""
    from policyqa import Citation
    from policyqa._ruling import GLOSSARY_REASON, ZH_RANK_UNSURE_AT, offline_engine

    engine = offline_engine(real_index)
    message = "出售假身份证，加我微信"
    nearest = real_index.clauses[real_index.position["wecom-penalties/rule-3/sending-illegal-content"]]
    for score, glossary_first in ((ZH_RANK_UNSURE_AT - 0.05, True), (ZH_RANK_UNSURE_AT + 0.3, False)):
        lead = Citation.of(nearest, quote=nearest.text[:40], score=score)
        monkeypatch.setattr(engine, "chinese_citations", lambda *args, lead=lead, **kwargs: [lead])
        ruling = engine.judge(message)
        assert ruling.verdict == "violation"
        if glossary_first:
            assert ruling.violations[0].clause_id == "weixin-standards/II.9.2"
            assert all(v.reason == GLOSSARY_REASON for v in ruling.violations)
        else:
            assert [v.clause_id for v in ruling.violations] == [nearest.clause_id]
