"""Batches: many texts per model call with the rulings of one at a time; a bad row costs only
itself; a build embeds each text once and a rebuild reuses the vectors it already has."""

from __future__ import annotations

import numpy as np
import pytest

from policyqa import InvalidInputError, ask, ask_many, judge, judge_many, run_rows
from policyqa._batch import ROWS_PER_CALL
from policyqa._indexing import TOKEN_BUDGET, VectorCache, embed_unique

MESSAGES = [
    "selling fake ID cards, any province, add my wx",
    "Archery club meets Saturday 9am at the sports centre. Bring water. New members welcome!",
    "hi all. great weather today. btw I can get you a fake diploma from any university, pm me. see you",
    "出售假身份证，加我微信",
    "新到一批货，同城配送，要的私聊",
    "Bonjour, je vends des vélos d'occasion à bon prix.",
    "Like and share this post to Moments to win a free iPad!",
    "Our pharmacy is open 8am to 10pm on weekdays; prescriptions are filled at the counter.",
]
QUESTIONS = [
    "Can I sell fake ID cards in a WeChat group?",
    "How do I appeal after my Weixin account was blocked?",
    "What colour themes can I choose for the chat background?",
    "可以在群里卖假证吗？",
]


def _ruling_key(ruling) -> tuple:
    return (ruling.verdict, ruling.confidence, [(v.clause_id, v.quote, v.message_span) for v in ruling.violations],
            [p.clause_id for p in ruling.penalties], [c.clause_id for c in ruling.considered], ruling.notes)


@pytest.mark.slow
@pytest.mark.parametrize("context", [{}, {"product": "wecom", "surface": "group"}])
def test_judge_many_gives_the_rulings_of_one_at_a_time(real_index, context):
    one = [judge(m, index=real_index, **context) for m in MESSAGES]
    many = judge_many(MESSAGES, index=real_index, **context)
    assert [_ruling_key(r) for r in many] == [_ruling_key(r) for r in one]
    assert {r.verdict for r in many} >= {"violation", "no_violation"}  # the texts are not all alike


@pytest.mark.slow
def test_ask_many_gives_the_answers_of_one_at_a_time(real_index):
    one = [ask(q, index=real_index) for q in QUESTIONS]
    many = ask_many(QUESTIONS, index=real_index)
    assert [(a.verdict, a.confidence, [c.clause_id for c in a.citations], [c.quote for c in a.citations])
            for a in many] == [(a.verdict, a.confidence, [c.clause_id for c in a.citations], [c.quote for c in a.citations])
                               for a in one]


@pytest.mark.slow
def test_judge_many_refuses_a_bad_message_like_judge(real_index):
    with pytest.raises(InvalidInputError, match="empty"):
        judge_many(["selling fake ID cards", "   "], index=real_index)


class _Answer:
    def __init__(self, text: str):
        self.text = text

    def model_dump(self, mode: str = "json") -> dict:
        return {"verdict": "ok", "message": self.text}


def test_a_bad_row_costs_only_itself_and_order_is_kept():
    calls: list[int] = []

    def decide_many(texts: list[str]) -> list[_Answer]:
        calls.append(len(texts))
        if any(t == "bad" for t in texts):
            raise InvalidInputError("the message is bad")
        return [_Answer(t) for t in texts]

    rows = [{"id": str(n), "text": "bad" if n == 5 else f"text {n}"} for n in range(ROWS_PER_CALL + 10)]
    rows.insert(3, {"id": "broken", "error": "line 4 is not valid JSON"})
    seen = []
    records = list(run_rows(rows, decide_many, progress=lambda done, total: seen.append((done, total))))
    assert [r["id"] for r in records] == [r["id"] for r in rows]
    by_id = {r["id"]: r for r in records}
    assert by_id["5"] == {"id": "5", "error": "the message is bad"}
    assert by_id["broken"]["error"].startswith("line 4")
    assert all(by_id[str(n)]["message"] == f"text {n}" for n in range(ROWS_PER_CALL + 10) if n != 5)
    assert calls[0] == ROWS_PER_CALL - 1  # the first chunk went in one call (less the JSON error row) ...
    assert calls.count(1) == ROWS_PER_CALL - 1  # ... failed on the bad row, and was redone row by row
    assert calls[-1] == 11  # the second chunk, clean, in one call
    assert seen[-1] == (len(rows), len(rows))


class _CountingEmbedder:
    """Counts the texts it embeds and the word pieces per call."""

    identity = "counting"
    max_tokens = 256

    def __init__(self):
        self.embedded: list[str] = []
        self.call_tokens: list[int] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2

    def encode(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        self.embedded.extend(texts)
        self.call_tokens.append(len(texts) * max(self.count_tokens(t) for t in texts))
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row, len(text) % 4] = 1.0
        return out


def test_a_build_embeds_each_text_once_in_batches_within_the_token_budget(tmp_path):
    embedder = _CountingEmbedder()
    texts = [f"text number {n % 300} " + "word " * (n % 40) for n in range(900)]
    vectors = embed_unique(texts, embedder, progress=lambda *a: None)
    assert sorted(embedder.embedded) == sorted(set(texts))
    assert all(tokens <= TOKEN_BUDGET for tokens in embedder.call_tokens)
    assert len(embedder.call_tokens) < len(set(texts)) / 10  # many texts per call
    expected = embedder.encode(texts)
    np.testing.assert_array_equal(vectors, expected)


def test_a_rebuild_embeds_only_what_changed(tmp_path):
    first = _CountingEmbedder()
    texts = ["selling fake ID cards", "archery club on saturday", "lottery results"]
    before = embed_unique(texts, first, progress=lambda *a: None, cache=VectorCache(tmp_path, "model-a"))
    second = _CountingEmbedder()
    after = embed_unique([*texts, "a new training item"], second, progress=lambda *a: None,
                         cache=VectorCache(tmp_path, "model-a"))
    assert second.embedded == ["a new training item"]
    np.testing.assert_array_equal(after[:3], before)
    other_model = _CountingEmbedder()
    embed_unique(texts, other_model, progress=lambda *a: None, cache=VectorCache(tmp_path, "model-b"))
    assert sorted(other_model.embedded) == sorted(texts)  # another model never reuses a vector


def test_a_torn_vector_cache_is_ignored(tmp_path):
    cache = VectorCache(tmp_path, "model-a")
    cache.path.write_bytes(b"not an npz file")
    embedder = _CountingEmbedder()
    embed_unique(["some text"], embedder, progress=lambda *a: None, cache=VectorCache(tmp_path, "model-a"))
    assert embedder.embedded == ["some text"]
