"""The one public way in for front ends: ask() and judge(), offline by default, LLM when configured."""

from __future__ import annotations

import time
from pathlib import Path

from ._config import PROJECT_ROOT, Settings, load_settings
from ._errors import DatasetError
from ._evaluation import EvalReport, evaluate_items, load_dataset
from ._report import write_report
from ._llm import LLM, llm_ask, llm_from_settings, llm_judge
from ._models import Answer, EvalItem, Ruling
from ._profiles import PostingContext
from ._retrieval import PolicyIndex, open_index
from ._ruling import offline_engine


def _resolve(index: PolicyIndex | None, settings: Settings | None, llm: LLM | None) -> tuple[PolicyIndex, LLM | None]:
    settings = settings or (index.settings if index else load_settings())
    index = index or open_index(settings)
    if llm is None and settings.engine == "llm":
        llm = llm_from_settings(settings)
    return index, llm


def ask(question: str, *, product: str | None = None, index: PolicyIndex | None = None,
        settings: Settings | None = None, llm: LLM | None = None) -> Answer:
    """Answer "is this allowed?" with a verdict and the clauses that decide it. With `product`
    (a key of corpus/products.toml: "weixin", "wechat", "wecom"), only the documents governing it answer.

    Raises:
        InvalidInputError: the question is empty, too long or not text; the product is unknown.
        IndexNotBuiltError, StaleIndexError, CorruptIndexError: the index cannot be used.
        ConfigError: the LLM engine is selected but not fully configured.
    """
    return ask_many([question], product=product, index=index, settings=settings, llm=llm)[0]


def judge(message: str, *, product: str | None = None, surface: str | None = None, index: PolicyIndex | None = None,
          settings: Settings | None = None, llm: LLM | None = None) -> Ruling:
    """Rule on a pasted message: violation, no violation, or needs review, with clauses and penalties.
    `product` and `surface` (keys of corpus/products.toml: "weixin" and "group", say) say where it
    was posted: citations and penalties then come from the documents governing that product, and
    surface-specific penalties (a group's) apply.

    Raises: the same as ask(), and InvalidInputError for an unknown surface.
    """
    return judge_many([message], product=product, surface=surface, index=index, settings=settings, llm=llm)[0]


def ask_many(questions: list[str], *, product: str | None = None, index: PolicyIndex | None = None,
             settings: Settings | None = None, llm: LLM | None = None) -> list[Answer]:
    """ask() for many questions: the offline engine embeds and searches them in batches, giving
    the answers ask() gives one at a time (confidences agree to rounding). Raises as ask() does,
    for the first bad question; `run_rows` keeps a batch going past bad rows."""
    index, llm = _resolve(index, settings, llm)
    context = _context(index, product, None)
    engine = offline_engine(index)
    if llm:
        return [llm_ask(q, offline=engine, llm=llm, context=context) for q in questions]
    return engine.ask_many(list(questions), context)


def judge_many(messages: list[str], *, product: str | None = None, surface: str | None = None,
               index: PolicyIndex | None = None, settings: Settings | None = None, llm: LLM | None = None) -> list[Ruling]:
    """judge() for many messages: each batch of messages and all their sentences are embedded in one
    model call and searched together, giving the rulings judge() gives one at a time (confidences
    agree to rounding). Raises as judge() does, for the first bad message."""
    index, llm = _resolve(index, settings, llm)
    context = _context(index, product, surface)
    engine = offline_engine(index)
    if llm:
        return [llm_judge(m, offline=engine, llm=llm, context=context) for m in messages]
    return engine.judge_many(list(messages), context)


def _context(index: PolicyIndex, product: str | None, surface: str | None) -> PostingContext | None:
    if product is None and surface is None:
        return None
    index.check_product(product, surface)
    return PostingContext(product=product, surface=surface)


def evaluate(datasets: list[Path] | None = None, *, split: str | None = "dev", engine: str = "offline",
             out_dir: Path | None = None, index: PolicyIndex | None = None, settings: Settings | None = None,
             llm: LLM | None = None, with_llama_baseline: bool = True, progress=None) -> EvalReport:
    """Evaluate ask/judge on gold datasets against the baselines and write the report files.

    datasets: JSONL files or folders; by default evals/datasets/<split>.jsonl.

    Raises:
        DatasetError: a dataset is missing or invalid.
        ConfigError: engine "llm" without a configured endpoint.
    """
    settings = settings or (index.settings if index else load_settings())
    if datasets:
        paths = list(datasets)
    else:
        if split not in {"dev", "test"}:
            raise DatasetError(f"split must be 'dev' or 'test', not {split!r}")
        paths = [PROJECT_ROOT / "evals" / "datasets" / f"{split}.jsonl"]
    items = load_dataset(paths)
    index = index or open_index(settings)
    if engine == "llm" and llm is None:
        llm = llm_from_settings(settings)
    chosen = llm if engine == "llm" else None

    def decide(item: EvalItem) -> Answer | Ruling:
        if item.kind == "question":
            return ask(item.text, product=item.product, index=index, settings=settings, llm=chosen)
        return judge(item.text, product=item.product, index=index, settings=settings, llm=chosen)

    report = evaluate_items(items, index=index, decide=decide, engine=engine, dataset=[str(p) for p in paths],
                            split=None if datasets else split, with_llama_baseline=with_llama_baseline, progress=progress)
    write_report(report, out_dir or settings.home / "reports" / time.strftime("%Y%m%d-%H%M%S"), progress=progress)
    return report
