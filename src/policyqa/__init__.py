"""PolicyQA: answer "is this allowed?" from written platform policies, citing the deciding clause.

The public surface is this module; everything under an underscore is private. Data flows one way:
corpus (_corpus) -> clauses (_clauses) -> indexes (_indexing) -> retrieval (_retrieval) ->
front ends (cli, the Streamlit app, the evaluation runner).
"""

from ._api import ask, evaluate, judge
from ._batch import read_rows, run_rows
from ._config import PACKAGED_MODEL, Settings, load_settings
from ._corpus import build_corpus, load_documents, normalise_for_match
from ._evaluation import DatasetError, EvalReport, load_dataset
from ._errors import (
    ConfigError,
    CorpusError,
    CorruptIndexError,
    IndexNotBuiltError,
    InvalidInputError,
    LLMError,
    PolicyQAError,
    StaleIndexError,
)
from ._inputs import check_text
from ._indexing import Embedder, IndexInfo, SentenceTransformerEmbedder
from ._llm import LLM, llm_from_settings, llm_status
from ._models import Answer, Citation, Clause, EvalItem, Hit, PolicyDocument, Ruling, Stance, Violation
from ._retrieval import PolicyIndex, open_index
from ._training import TrainingItem, check_training_data, load_training

__all__ = [
    "LLM",
    "PACKAGED_MODEL",
    "Answer",
    "Citation",
    "EvalItem",
    "Ruling",
    "Violation",
    "DatasetError",
    "EvalReport",
    "ask",
    "evaluate",
    "judge",
    "load_dataset",
    "llm_from_settings",
    "llm_status",
    "Clause",
    "ConfigError",
    "CorpusError",
    "CorruptIndexError",
    "Embedder",
    "Hit",
    "IndexInfo",
    "IndexNotBuiltError",
    "InvalidInputError",
    "LLMError",
    "PolicyDocument",
    "PolicyIndex",
    "PolicyQAError",
    "SentenceTransformerEmbedder",
    "Settings",
    "StaleIndexError",
    "Stance",
    "build_corpus",
    "check_text",
    "check_training_data",
    "load_training",
    "TrainingItem",
    "load_documents",
    "load_settings",
    "read_rows",
    "run_rows",
    "normalise_for_match",
    "open_index",
]
