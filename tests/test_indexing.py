"""Index stage: build, fingerprint, atomic swap, and refusal of stale or corrupt indexes."""

from __future__ import annotations

import json

import pytest

from policyqa import CorpusError, CorruptIndexError, IndexNotBuiltError, PolicyIndex, StaleIndexError, load_settings
from policyqa._indexing import MANIFEST, embedding_inputs, example_owners, load_clauses
from policyqa._training import TrainingItem, load_training


@pytest.fixture
def built(corpus_copy, fake_embedder, tmp_path):
    settings = load_settings(corpus_dir=corpus_copy, home=tmp_path / "home")
    PolicyIndex(settings, embedder=fake_embedder).build()
    return settings


def test_build_writes_a_loadable_index_with_every_clause(built, fake_embedder):
    index = PolicyIndex(built, embedder=fake_embedder).load()
    assert len(index.clauses) == index.manifest["clause_count"] == len(load_clauses(built))
    assert index.manifest["vector_count"] > len(index.clauses)  # phrase windows and examples add rows
    assert index.models and index.models["message"]["features"]  # the models are fitted with the build
    assert built.index_dir.is_symlink()


def test_build_reports_progress(corpus_copy, fake_embedder, tmp_path):
    seen = []
    settings = load_settings(corpus_dir=corpus_copy, home=tmp_path / "h2")
    PolicyIndex(settings, embedder=fake_embedder).build(progress=lambda stage, done, total: seen.append((stage, done, total)))
    embed = [s for s in seen if s[0] == "embed"]
    assert embed and embed[-1][1] == embed[-1][2]
    assert {"parse", "embed", "examples", "index", "train"} <= {s[0] for s in seen}


def test_missing_index_is_reported_or_built(corpus_copy, fake_embedder, tmp_path):
    settings = load_settings(corpus_dir=corpus_copy, home=tmp_path / "empty")
    with pytest.raises(IndexNotBuiltError, match="policyqa index"):
        PolicyIndex(settings, embedder=fake_embedder).load()
    assert PolicyIndex(settings, embedder=fake_embedder).load(build="missing").loaded


def test_search_before_load_says_so(corpus_copy, fake_embedder):
    with pytest.raises(IndexNotBuiltError, match="load"):
        PolicyIndex(load_settings(corpus_dir=corpus_copy), embedder=fake_embedder).search("gambling")


def test_editing_a_corpus_file_makes_the_index_stale(built, fake_embedder):
    path = built.corpus_dir / "wecom-penalties.txt"
    path.write_text(path.read_text() + "\nAn added paragraph.\n")
    with pytest.raises(StaleIndexError, match="corpus changed"):
        PolicyIndex(built, embedder=fake_embedder).load()
    assert PolicyIndex(built, embedder=fake_embedder).load(build="stale").loaded


def test_another_model_makes_the_index_stale(built, fake_embedder):
    fake_embedder.identity = "another-model"
    with pytest.raises(StaleIndexError, match="embedding model changed"):
        PolicyIndex(built, embedder=fake_embedder).load()


@pytest.mark.parametrize("victim", ["dense.faiss", "clauses.jsonl", "owners.npy"])
def test_a_truncated_index_file_is_never_served(built, fake_embedder, victim):
    path = built.index_dir / victim
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CorruptIndexError, match="checksum"):
        PolicyIndex(built, embedder=fake_embedder).load()


def test_a_deleted_index_file_is_reported(built, fake_embedder):
    (built.index_dir / "dense.faiss").unlink()
    with pytest.raises(CorruptIndexError, match="missing"):
        PolicyIndex(built, embedder=fake_embedder).load()


def test_a_broken_manifest_is_reported(built, fake_embedder):
    (built.index_dir / MANIFEST).write_text("{not json")
    with pytest.raises(CorruptIndexError, match="manifest"):
        PolicyIndex(built, embedder=fake_embedder).load(build="stale")


def test_a_crash_mid_build_leaves_the_old_index_in_service(built, fake_embedder):
    before = built.index_dir.resolve()

    class Exploding(type(fake_embedder)):
        calls = 0

        def encode(self, texts, *, batch_size=32):
            Exploding.calls += 1
            if Exploding.calls > 3:
                raise RuntimeError("power cut")
            return super().encode(texts, batch_size=batch_size)

    with pytest.raises(RuntimeError, match="power cut"):
        PolicyIndex(built, embedder=Exploding()).build()
    assert built.index_dir.resolve() == before
    assert PolicyIndex(built, embedder=fake_embedder).load().loaded
    assert not [p for p in (built.home / "builds").iterdir() if p.name.startswith(".staging")]


def test_rebuild_swaps_in_a_new_build_and_removes_the_old(built, fake_embedder):
    before = built.index_dir.resolve()
    PolicyIndex(built, embedder=fake_embedder).build()
    after = built.index_dir.resolve()
    assert after != before and not before.exists()
    assert json.loads((after / MANIFEST).read_text())["clause_count"] > 600


def test_training_items_become_examples_of_the_clauses_they_name(built, fake_embedder):
    index = PolicyIndex(built, embedder=fake_embedder).load()
    items = load_training(built.corpus_dir, load_clauses(built))
    english = [i for i in items if i.lang == "en"]
    assert index.examples == english  # the example bank, in order
    for item in english:
        for clause_id in example_owners(item):
            assert item.text in index.clause(clause_id).examples


def test_an_item_exemplifies_the_clause_it_was_written_for():
    refs = [{"clause_id": "wechat-community-guidelines/exception/b", "quote": "breastfeeding"},
            {"clause_id": "wechat-community-guidelines/nudity/b1", "quote": "nudity"}]
    permitted = TrainingItem(id="p", kind="message", text="first feed 🤱", label="no_violation", clauses=refs)
    violation = TrainingItem(id="v", kind="message", text="nudes 50 each", label="violation", clauses=refs[::-1])
    assert example_owners(permitted) == ("wechat-community-guidelines/exception/b",)  # not the rule it qualifies
    assert example_owners(violation) == ("wechat-community-guidelines/nudity/b1",)


def test_every_example_row_belongs_to_its_item_and_clause(built, fake_embedder):
    index = PolicyIndex(built, embedder=fake_embedder).load()
    rows = index.row_items >= 0
    assert rows.any() and (~rows).sum() >= len(index.clauses)  # every clause has its own wording rows
    for row in map(int, rows.nonzero()[0]):
        item = index.examples[index.row_items[row]]
        assert index.clauses[index._owners[row]].clause_id in item.clause_ids


def test_invalid_training_data_fails_the_build_naming_the_line(corpus_copy, fake_embedder, tmp_path):
    path = corpus_copy / "training" / "en" / "broken.jsonl"
    path.write_text(json.dumps({"id": "x-1", "kind": "message", "text": "fake ids, add me", "label": "violation",
                                "clauses": [{"clause_id": "weixin-standards/II.9.2", "quote": "words not in the clause"}]}) + "\n")
    settings = load_settings(corpus_dir=corpus_copy, home=tmp_path / "home")
    with pytest.raises(CorpusError, match=r"broken.jsonl:1: quote .* is not in the text of weixin-standards/II.9.2"):
        PolicyIndex(settings, embedder=fake_embedder).build()
    assert not settings.index_dir.exists()


def test_a_killed_build_leaves_no_staging_folder_behind_for_long(built, fake_embedder):
    builds = built.home / "builds"
    stale = builds / ".staging-1-1"
    stale.mkdir()
    old = 3 * 3600
    import os
    import time
    os.utime(stale, (time.time() - old, time.time() - old))
    fresh = builds / ".staging-2-2"
    fresh.mkdir()
    PolicyIndex(built, embedder=fake_embedder).build()
    assert not stale.exists() and fresh.exists()  # a young one may be a build still running


def test_a_staging_folder_of_a_dead_build_is_removed_at_once(built, fake_embedder):
    import subprocess
    import sys

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    orphan = built.home / "builds" / f".staging-{finished.pid}-1"  # its builder was killed a moment ago
    orphan.mkdir()
    PolicyIndex(built, embedder=fake_embedder).build()
    assert not orphan.exists()


def test_a_file_missing_from_the_manifest_is_corruption(built, fake_embedder):
    index_dir = built.index_dir.resolve()
    manifest_path = index_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert "clauses.jsonl" in manifest["files"]
    del manifest["files"]["clauses.jsonl"]  # then clauses.jsonl is edited: it must not be served
    manifest_path.write_text(json.dumps(manifest))
    clauses = index_dir / "clauses.jsonl"
    clauses.write_text(clauses.read_text().replace("fake", "genuine", 1))
    with pytest.raises(CorruptIndexError, match="clauses.jsonl .* is not in its manifest"):
        PolicyIndex(built, embedder=fake_embedder).load()


@pytest.mark.slow
def test_no_embedding_input_is_silently_truncated(real_index):
    embedder = real_index.embedder
    longest = 0
    for clause in real_index.clauses:
        for text in embedding_inputs(clause, embedder):
            longest = max(longest, embedder.count_tokens(text))
    assert longest <= embedder.max_tokens


@pytest.mark.slow
def test_long_clauses_are_split_into_windows_that_keep_their_citation(real_index):
    embedder = real_index.embedder
    clause = real_index.clause("weixin-standards/II.8.6/example-3")
    inputs = embedding_inputs(clause, embedder)
    assert len(inputs) > 1 and all(embedder.count_tokens(t) <= embedder.max_tokens for t in inputs)
