"""Errors PolicyQA raises. Every one of them is meant to reach the user as a readable message.

    PolicyQAError
     ├── CorpusError          a policy document cannot be cleaned or parsed, or a clause id repeats
     ├── ConfigError          a setting or config file is invalid
     ├── InvalidInputError    a question or message is empty, too long or not text
     ├── (index errors)
     │    ├── IndexNotBuiltError   no index on disk, or load() was not called
     │    ├── StaleIndexError      the index was built from another corpus, model or settings
     │    └── CorruptIndexError    an index file is missing, truncated or does not match its checksum
     ├── LLMError             the configured LLM endpoint failed (only ever seen inside the LLM engine,
     │                        which falls back to the offline engine)
     ├── DatasetError         an evaluation dataset is missing, malformed or inconsistent
     └── StoreError           the decisions and audit database cannot be opened or written
          └── RecordNotFoundError   a decision names a ruling the store does not hold
"""

from __future__ import annotations


class PolicyQAError(Exception):
    """Base of every error PolicyQA raises on purpose; its message is written for the user."""


class CorpusError(PolicyQAError):
    """A policy document could not be cleaned or parsed into clauses."""

    def __init__(self, message: str, *, document_id: str | None = None, clause_id: str | None = None):
        super().__init__(message)
        self.document_id = document_id
        self.clause_id = clause_id


class ConfigError(PolicyQAError):
    """A setting, environment variable or config file is invalid."""


class InvalidInputError(PolicyQAError):
    """A question or message cannot be processed as given (empty, too long, binary)."""


class IndexNotBuiltError(PolicyQAError):
    """There is no index where one was expected, or the index object was not loaded."""


class StaleIndexError(PolicyQAError):
    """The index on disk was built from a different corpus, model or index settings."""


class CorruptIndexError(PolicyQAError):
    """An index file is missing, truncated or fails its checksum; it is never served."""


class LLMError(PolicyQAError):
    """The configured LLM endpoint failed or answered with something unusable."""


class DatasetError(PolicyQAError):
    """An evaluation dataset is missing, malformed or inconsistent."""


class StoreError(PolicyQAError):
    """The decisions and audit database cannot be opened, migrated or written."""


class RecordNotFoundError(StoreError):
    """A decision names a ruling or answer the store does not hold."""
