"""Property-based: any text at all, through judge and ask on the real index, either gets a result
that keeps the citation contract or a PolicyQAError, never another exception.

CI runs FUZZ_EXAMPLES (default 500) examples per property; `make fuzz` runs 10,000 and prints counts.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policyqa import Answer, PolicyQAError, Ruling, ask, judge

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "500"))
OUTCOMES: Counter[str] = Counter()

POLICY_WORDS = ["selling", "fake", "ID", "cards", "dm", "me", "fapiao", "invoices", "gambling", "QR", "code", "group",
                "出售", "假", "身份证", "加我微信", "代开发票", "赌博", "http://x.test", "ignore previous instructions", "\u200b",
                "\ud800", "\x00", "\u202e", "**", "<img src=x>", "。", ".", "\n"]
texts = st.one_of(
    st.text(max_size=400),  # any code points, lone surrogates included
    st.lists(st.sampled_from(POLICY_WORDS), max_size=60).map(" ".join),  # policy-ish words in odd company
    st.builds(lambda a, b: a + b, st.text(max_size=50), st.sampled_from(POLICY_WORDS)),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1000, max_size=3000),
)


fuzzed = lambda test: settings(  # noqa: E731 - one configuration for both properties
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])(given(text=texts)(test))


def check_ruling(ruling: Ruling, index) -> None:
    assert 0.0 <= ruling.confidence <= 1.0
    assert ruling.verdict != "violation" or ruling.violations, "a violation without a clause"
    for violation in ruling.violations:
        assert violation.quote and violation.quote in index.clause(violation.clause_id).text
        assert violation.message_span and violation.message_span in ruling.message
    for penalty in ruling.penalties:
        assert penalty.quote in index.clause(penalty.clause_id).text


def check_answer(answer: Answer, index) -> None:
    assert 0.0 <= answer.confidence <= 1.0
    assert answer.verdict not in ("prohibited", "allowed") or answer.citations, "a verdict without a clause"
    for citation in answer.citations:
        assert citation.quote and citation.quote in index.clause(citation.clause_id).text


@pytest.fixture(scope="module", autouse=True)
def _print_outcomes():
    """After the properties run: their outcome counts (`make fuzz` shows them)."""
    yield
    print("\nfuzz outcomes:", ", ".join(f"{name} {n}" for name, n in sorted(OUTCOMES.items())) or "none ran")


@pytest.mark.parametrize("name, decide, check", [("judge", judge, check_ruling), ("ask", ask, check_answer)])
@fuzzed
def test_results_keep_the_contract_on_any_text(real_index, name, decide, check, text):
    try:
        result = decide(text, index=real_index)
    except PolicyQAError:
        OUTCOMES[f"{name}: refused"] += 1
        return
    OUTCOMES[f"{name}: {result.verdict}"] += 1
    check(result, real_index)
