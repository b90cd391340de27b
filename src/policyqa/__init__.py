"""PolicyQA: answer "is this allowed?" from written platform policies, citing the deciding clause.

The public surface is this module; everything under an underscore is private. Data flows one way:
profiles (_profiles) -> corpus (_corpus) -> clauses (_clauses) -> indexes (_indexing) -> retrieval
(_retrieval) -> rulings (_ruling) -> front ends (cli, the Streamlit app, the evaluation runner).
"""

from ._api import ask, ask_many, evaluate, judge, judge_many
from ._batch import done_ids, pending, read_rows, run_rows
from ._config import PACKAGED_MODEL, Settings, load_settings
from ._corpus import build_corpus, load_documents, normalise_for_match
from ._evaluation import EvalReport, load_dataset
from ._errors import (
    ConfigError,
    DatasetError,
    CorpusError,
    CorruptIndexError,
    IndexNotBuiltError,
    InvalidInputError,
    LLMError,
    PolicyQAError,
    RecordNotFoundError,
    StaleIndexError,
    StoreError,
)
from ._inputs import check_text
from ._indexing import Embedder, IndexInfo, SentenceTransformerEmbedder
from ._llm import LLM, llm_from_settings, llm_status
from ._models import Answer, Citation, Clause, EvalItem, Hit, PolicyDocument, Ruling, Stance, Violation
from ._profiles import PolicyProfile, PostingContext, load_profiles
from ._ray import RayJobSummary, judge_with_ray
from ._retrieval import PolicyIndex, open_index
from ._store import (DECIDABLE as DECIDABLE_VERDICTS, AuditRecord, AuditStamp, Decision, Store, audit_recorder,
                     cited_clause_ids, default_reviewer, export_feedback, feedback_items, new_batch_id, open_store,
                     write_audit)
from ._training import TrainingItem, check_training_data, load_training

_LAZY = {"create_app": "._server", "serve": "._server"}
"""Public names imported on first use: the HTTP server's module imports FastAPI and uvicorn, which
`policyqa judge` must not pay for (the cold-start benchmark counts every import)."""


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'policyqa' has no attribute {name!r}")


__all__ = [
    "Answer",
    "AuditRecord",
    "AuditStamp",
    "Citation",
    "Clause",
    "ConfigError",
    "CorpusError",
    "CorruptIndexError",
    "DECIDABLE_VERDICTS",
    "DatasetError",
    "Decision",
    "Embedder",
    "EvalItem",
    "EvalReport",
    "Hit",
    "IndexInfo",
    "IndexNotBuiltError",
    "InvalidInputError",
    "LLM",
    "LLMError",
    "PACKAGED_MODEL",
    "PolicyDocument",
    "PolicyIndex",
    "PolicyProfile",
    "PolicyQAError",
    "PostingContext",
    "RayJobSummary",
    "RecordNotFoundError",
    "Ruling",
    "SentenceTransformerEmbedder",
    "Settings",
    "StaleIndexError",
    "Stance",
    "Store",
    "StoreError",
    "TrainingItem",
    "Violation",
    "ask",
    "ask_many",
    "audit_recorder",
    "build_corpus",
    "check_text",
    "check_training_data",
    "cited_clause_ids",
    "create_app",
    "default_reviewer",
    "done_ids",
    "evaluate",
    "export_feedback",
    "feedback_items",
    "judge",
    "judge_many",
    "judge_with_ray",
    "llm_from_settings",
    "llm_status",
    "load_dataset",
    "load_documents",
    "load_profiles",
    "load_settings",
    "load_training",
    "new_batch_id",
    "normalise_for_match",
    "open_index",
    "open_store",
    "pending",
    "read_rows",
    "run_rows",
    "serve",
    "write_audit",
]
