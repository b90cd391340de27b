"""The one public way in for front ends: ask() and judge(), offline by default, LLM when configured."""

from __future__ import annotations

from ._config import Settings, load_settings
from ._llm import LLM, llm_ask, llm_from_settings, llm_judge
from ._models import Answer, Ruling
from ._retrieval import PolicyIndex, open_index
from ._ruling import offline_engine


def _resolve(index: PolicyIndex | None, settings: Settings | None, llm: LLM | None) -> tuple[PolicyIndex, LLM | None]:
    settings = settings or (index.settings if index else load_settings())
    index = index or open_index(settings)
    if llm is None and settings.engine == "llm":
        llm = llm_from_settings(settings)
    return index, llm


def ask(question: str, *, index: PolicyIndex | None = None, settings: Settings | None = None, llm: LLM | None = None) -> Answer:
    """Answer "is this allowed?" with a verdict and the clauses that decide it.

    Raises:
        InvalidInputError: the question is empty, too long or not text.
        IndexNotBuiltError, StaleIndexError, CorruptIndexError: the index cannot be used.
        ConfigError: the LLM engine is selected but not fully configured.
    """
    index, llm = _resolve(index, settings, llm)
    engine = offline_engine(index)
    return llm_ask(question, offline=engine, llm=llm) if llm else engine.ask(question)


def judge(message: str, *, index: PolicyIndex | None = None, settings: Settings | None = None, llm: LLM | None = None) -> Ruling:
    """Rule on a pasted message: violation, no violation, or needs review, with clauses and penalties.

    Raises: the same as ask().
    """
    index, llm = _resolve(index, settings, llm)
    engine = offline_engine(index)
    return llm_judge(message, offline=engine, llm=llm) if llm else engine.judge(message)
