"""Shared fixtures: every test gets its own POLICYQA_HOME; a fake embedder keeps index unit tests
fast; the real packaged model is built into one session-wide index for the `slow` tests."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from policyqa import PolicyIndex, load_settings
from policyqa._config import PROJECT_ROOT


class FakeEmbedder:
    """Deterministic bag-of-words hashing embedder: similar words, similar vectors; no model load."""

    identity = "fake-embedder-v1"
    max_tokens = 256

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2

    def encode(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        matrix = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                matrix[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 64] += 1.0
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return matrix / np.where(norms == 0, 1, norms)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("POLICYQA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("POLICYQA_CONFIG", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()


TRAINING_LINES_PER_FILE = 40
"""A corpus copy keeps this many items of each training file: enough to fit every model, small
enough that an index built with the fake embedder takes seconds, not a minute."""


def copy_corpus(target: Path) -> Path:
    """Copy the corpus to `target`, keeping a sample of each training file."""
    shutil.copytree(PROJECT_ROOT / "corpus", target)
    for path in (target / "training").rglob("*.jsonl"):
        lines = path.read_text(encoding="utf-8").splitlines()
        path.write_text("\n".join(lines[:TRAINING_LINES_PER_FILE]) + "\n", encoding="utf-8")
    return target


@pytest.fixture
def corpus_copy(tmp_path) -> Path:
    """A private copy of the corpus that a test may edit, with a sample of the training data."""
    return copy_corpus(tmp_path / "corpus")


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """A shared, read-only corpus copy with a sample of the training data (for fake-embedder indexes)."""
    return copy_corpus(tmp_path_factory.mktemp("small") / "corpus")


@pytest.fixture(scope="session")
def real_home(tmp_path_factory) -> Path:
    """One index built with the real packaged model, shared by every slow test.

    POLICYQA_TEST_PREBUILT=<home> copies that home's index instead of building (a developer's
    shortcut when rerunning slow tests; CI builds). A stale copy fails on load, as any stale index does."""
    import os

    home = tmp_path_factory.mktemp("real-home")
    prebuilt = os.environ.get("POLICYQA_TEST_PREBUILT")
    if prebuilt:
        shutil.copytree(Path(prebuilt) / "index", home / "index", symlinks=False)
        return home
    PolicyIndex(load_settings(home=home)).build()
    return home


@pytest.fixture(scope="session")
def real_index(real_home) -> PolicyIndex:
    return PolicyIndex(load_settings(home=real_home)).load()


@pytest.fixture
def app(real_home, monkeypatch, tmp_path):
    """The web app under streamlit's AppTest, on the real index, with a store of its own."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    monkeypatch.setenv("POLICYQA_DATABASE_URL", f"sqlite:///{tmp_path / 'store.db'}")
    st.cache_resource.clear()
    st.cache_data.clear()
    return AppTest.from_file(str(PROJECT_ROOT / "app" / "streamlit_app.py"), default_timeout=180)
