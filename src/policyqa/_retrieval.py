"""Retrieval stage: a query -> ranked clauses, fusing dense (FAISS) and lexical (BM25) rankings.

`PolicyIndex` is cheap to construct; `load()` does the heavy work once (model, FAISS, BM25) and the
loaded object is safe to share between threads (the Streamlit app does).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import numpy as np

from ._config import Settings, load_settings
from ._errors import CorpusError, CorruptIndexError, IndexNotBuiltError, InvalidInputError, StaleIndexError
from ._chinese import ZH_DIR, ZH_GLOSSARY, ChineseBank, language_of, read_zh_glossary
from ._indexing import (
    BM25_DIR, CLAUSES, WORDING_BM25_DIR, DENSE, EXAMPLE_VECTORS, EXAMPLES, MODELS, OWNERS, QUERY_MODEL, ROW_ITEMS, SPAN_VECTORS, SPANS,
    Embedder, IndexInfo, Progress, SentenceTransformerEmbedder, bm25_tokenize, build_index, embed_unique, fingerprint,
    model_identity,
    read_manifest, resolve_model_path, stale_reasons, verify_files,
)
from ._training import TrainingItem
from ._corpus import CHAT_GLOSSARY
from ._profiles import load_catalogue, load_profiles
from ._inputs import check_text
from ._models import Clause, Hit

BuildPolicy = Literal["never", "missing", "stale"]


class PolicyIndex:
    """The searchable corpus: clauses plus their dense and lexical indexes."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None):
        self.settings = settings or load_settings()
        self._embedder = embedder
        self._query_embedder: Embedder | None = None
        self._lock = threading.Lock()
        self._loaded = False
        self.clauses: list[Clause] = []
        self.manifest: dict = {}
        self.chinese: ChineseBank | None = None
        self.profiles: list = []  # the policy profiles (_profiles), read with the index
        self.zh_glossary: dict[str, str] = {}  # Chinese term -> the policies' English words
        self.catalogue = None

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def embedder(self) -> Embedder:
        """The configured model: it embeds the clause side when the index is built."""
        if self._embedder is None:
            self._embedder = SentenceTransformerEmbedder(self.settings.embedding_model)
        return self._embedder

    @property
    def query_embedder(self) -> Embedder:
        """The model that embeds questions, messages and training examples: the query encoder tuned
        at index time when the index has one, else the configured model."""
        return self._query_embedder or self.embedder

    def _configured_identity(self) -> str:
        """The configured model's identity, without loading it (loading takes seconds)."""
        if self._embedder is not None:
            return self._embedder.identity
        return model_identity(self.settings.embedding_model, resolve_model_path(self.settings.embedding_model))

    def load(self, *, build: BuildPolicy = "never", progress: Progress | None = None) -> PolicyIndex:
        """Load the index from disk, building it first when `build` allows.

        build="missing" builds an index that does not exist; build="stale" also rebuilds one made
        from another corpus, model or settings. A corrupt index is never served or silently replaced.

        Raises:
            IndexNotBuiltError: no index on disk and build="never".
            StaleIndexError: the index does not match the corpus/model and build is not "stale".
            CorruptIndexError: an index file fails its checksum.
        """
        index_dir = self.settings.index_dir
        try:
            manifest = read_manifest(index_dir, verify=False)
        except IndexNotBuiltError:
            if build == "never":
                raise
            self.build(progress=progress)
            manifest = read_manifest(index_dir, verify=False)
        reasons = stale_reasons(manifest, fingerprint(self.settings, self._configured_identity()))
        if reasons:
            if build != "stale":
                raise StaleIndexError(f"the index at {index_dir} is stale ({'; '.join(reasons)}); "
                                      f"rebuild it with `policyqa index`")
            self.build(progress=progress)
            manifest = read_manifest(index_dir, verify=False)
        folder = index_dir.resolve()  # from here on one build, even if a rebuild swaps the link meanwhile
        manifest = read_manifest(folder, verify=False)
        # The checksums (125 MB, ~0.4 s) are checked on a second thread while this one imports and
        # loads the model (seconds); hashing releases the GIL. Nothing is served before both finish.
        with ThreadPoolExecutor(max_workers=1) as pool:
            checked = pool.submit(verify_files, folder, manifest)
            try:
                self._read(folder, manifest)
            finally:
                try:
                    checked.result()
                except CorruptIndexError:
                    self._loaded = False
                    raise
        return self

    def with_settings(self, **changes) -> PolicyIndex:
        """This loaded index under other query-time settings (fusion weights, top-k), sharing
        everything loaded; settings that shape the index need a rebuild instead."""
        other = copy.copy(self)
        other.settings = self.settings.model_copy(update=changes)
        return other

    def build(self, *, progress: Progress | None = None) -> IndexInfo:
        """(Re)build the index on disk from the corpus and training data, fitting the models. Does not load it."""
        from ._learning import fit_models  # a later stage: the models learn from what this index retrieves

        def fit(folder: Path, report: Progress) -> None:
            staged = PolicyIndex(self.settings, embedder=self.embedder)
            staged._read(folder, read_manifest(folder))  # with the tuned query encoder, when there is one
            fit_models(staged, folder / MODELS, progress=report)

        return build_index(self.settings, self.embedder, progress=progress, fit=fit)

    def _read(self, folder: Path, manifest: dict) -> None:
        import bm25s
        import faiss

        try:
            dense = faiss.read_index(str(folder / DENSE))
            owners = np.load(folder / OWNERS)
            row_items = np.load(folder / ROW_ITEMS)
            with (folder / CLAUSES).open(encoding="utf-8") as handle:
                clauses = [Clause.model_validate(json.loads(line)) for line in handle]
            with (folder / EXAMPLES).open(encoding="utf-8") as handle:
                rows = [json.loads(line) for line in handle]
            examples = [TrainingItem.model_validate(row["item"]) for row in rows]
            folds = np.asarray([int(row["fold"]) for row in rows], dtype=np.int32)
            example_vectors = np.load(folder / EXAMPLE_VECTORS)
            spans = np.load(folder / SPANS)
            span_vectors = np.load(folder / SPAN_VECTORS)
            lexical = bm25s.BM25.load(str(folder / BM25_DIR), show_progress=False)
            wording_lexical = bm25s.BM25.load(str(folder / WORDING_BM25_DIR), show_progress=False)
            models = json.loads((folder / MODELS).read_text(encoding="utf-8")) if (folder / MODELS).is_file() else None
            query_embedder = SentenceTransformerEmbedder(str(folder / QUERY_MODEL)) if (folder / QUERY_MODEL).is_dir() else None
            position = {c.clause_id: i for i, c in enumerate(clauses)}
            chinese = ChineseBank.load(folder / ZH_DIR, position)
        except Exception as exc:  # noqa: BLE001 - whatever the reader library raises, the index is unusable
            raise CorruptIndexError(f"cannot read the index in {folder}: {exc}; rebuild with `policyqa index`") from exc
        if (dense.ntotal != len(owners) or len(owners) != len(row_items) or len(clauses) != manifest.get("clause_count")
                or len(examples) != len(example_vectors) or len(spans) != len(span_vectors)):
            raise CorruptIndexError(f"index in {folder} is inconsistent; rebuild with `policyqa index`")
        self._dense, self._owners, self._lexical = dense, owners, lexical
        self.wording_lexical = wording_lexical
        self.row_items = row_items
        self.row_vectors = dense.reconstruct_n(0, dense.ntotal) if dense.ntotal else np.zeros((0, 1), np.float32)
        self.examples, self.example_folds, self.example_vectors = examples, folds, example_vectors
        self.spans, self.span_vectors = spans, span_vectors
        self.models = models
        self.chinese = chinese  # the Chinese training items' bank (_chinese), or None
        self._query_embedder = query_embedder
        self.folder = folder
        self.clauses, self.manifest = clauses, manifest
        self._by_id = {c.clause_id: c for c in clauses}
        self.position = {c.clause_id: i for i, c in enumerate(clauses)}
        self._glossary = _read_glossary(self.settings.corpus_dir / CHAT_GLOSSARY)
        self.zh_glossary = read_zh_glossary(self.settings.corpus_dir / ZH_GLOSSARY)
        self.profiles = load_profiles(self.settings.corpus_dir)
        self.catalogue = load_catalogue(self.settings.corpus_dir)
        self._scopes = {doc.document_id: re.compile(doc.scope_pattern, re.I) for doc in self.profiles if doc.scope_pattern}
        self._loaded = True

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise IndexNotBuiltError("the index is not loaded; call PolicyIndex.load() first")

    def clause(self, clause_id: str) -> Clause:
        """The clause with this id. Raises KeyError if there is none."""
        self._require_loaded()
        return self._by_id[clause_id]

    @property
    def fingerprint(self) -> dict[str, str]:
        return dict(self.manifest.get("fingerprint", {}))

    # --- retrieval --------------------------------------------------------------------------------

    def encode(self, texts: list[str]) -> np.ndarray:
        """Embed texts with the index's model (serialised: tokenizers are not re-entrant), in batches
        of similar length, as a build does (embed_unique): in one batch a message's 40 short sentences
        were padded to its whole text's 256 word pieces. benchmarks/bench_input_cost.py measures the
        cost of long and many-sentence messages against a short one."""
        with self._lock:
            return embed_unique(texts, self.query_embedder, progress=lambda *_: None)

    def dense_ranking(self, query_vectors: np.ndarray, limit: int) -> list[list[tuple[int, float]]]:
        """Per query: (clause position, best cosine) for the top clauses, best first."""
        self._require_loaded()
        rows = min(self._dense.ntotal, limit * 4)
        scores, ids = self._dense.search(np.ascontiguousarray(query_vectors, dtype=np.float32), rows)
        out = []
        for row_scores, row_ids in zip(scores, ids):
            best: dict[int, float] = {}
            for score, vector_id in zip(row_scores, row_ids):
                if vector_id < 0:
                    continue
                owner = int(self._owners[vector_id])
                best[owner] = max(best.get(owner, -1.0), float(score))
            out.append(sorted(best.items(), key=lambda item: -item[1])[:limit])
        return out

    def lexical_ranking(self, queries: list[str], limit: int, lexical=None) -> list[list[tuple[int, float]]]:
        """Per query: (clause position, BM25 score) for clauses sharing at least one term.
        `lexical` is another bm25s index over the same clauses (the model fitting passes one built
        without the fold being scored)."""
        self._require_loaded()
        lexical = lexical or self._lexical
        vocabulary = lexical.vocab_dict
        out = []
        for tokens in bm25_tokenize(queries):
            known = [t for t in tokens if t in vocabulary]
            if not known:
                out.append([])
                continue
            ids, scores = lexical.retrieve([known], k=min(limit, len(self.clauses)), show_progress=False)
            out.append([(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if s > 0])
        return out

    def search(self, query: str, *, top_k: int | None = None, product: str | None = None) -> list[Hit]:
        """Rank clauses for a query by reciprocal rank fusion of dense and BM25 rankings; with a
        product, only clauses of the documents that govern it.

        Raises:
            InvalidInputError: the query is empty, too long or not text, or the product is unknown.
            IndexNotBuiltError: load() has not been called.
        """
        return self.search_many([query], top_k=top_k, product=product)[0]

    def search_many(self, queries: list[str], *, top_k: int | None = None,
                    vectors: np.ndarray | None = None, product: str | None = None) -> list[list[Hit]]:
        """search() for several queries at once, embedding them in one batch (or reusing `vectors`,
        their embeddings, when the caller already has them)."""
        self._require_loaded()
        queries = [check_text(q, max_chars=self.settings.max_query_chars) for q in queries]
        k = top_k or self.settings.top_k
        candidates = max(self.settings.candidates, k)
        dense = self.dense_ranking(self.encode(queries) if vectors is None else vectors, candidates)
        lexical = self.lexical_ranking([self.expand(q) if self.settings.expand_queries else q for q in queries], candidates)
        if self.chinese is not None:  # Chinese queries: the Chinese examples' ranking stands in for English BM25
            chinese = [n for n, q in enumerate(queries) if language_of(q) == "zh"]
            for n, ranking in zip(chinese, self.chinese.clause_ranking([queries[n] for n in chinese], candidates)):
                lexical[n] = ranking
                dense[n] = dense[n][: self.settings.chinese_dense_candidates]
        if product is None:
            return [self.fuse(q, d, l, k) for q, d, l in zip(queries, dense, lexical)]
        self.check_product(product)
        out = []
        for q, d, l in zip(queries, dense, lexical):
            governed = [h for h in self.fuse(q, d, l, len(self.clauses)) if product in h.clause.products][:k]
            out.append([h.model_copy(update={"rank": n}) for n, h in enumerate(governed, start=1)])
        return out

    def check_product(self, product: str | None, surface: str | None = None) -> None:
        """Raises InvalidInputError for a product or surface corpus/products.toml does not name."""
        self._require_loaded()
        for kind, value, known in (("product", product, self.catalogue.products),
                                   ("surface", surface, self.catalogue.surfaces)):
            if value is not None and value not in known:
                raise InvalidInputError(f"unknown {kind} {value!r}; choose one of: {', '.join(known)}")

    def expand(self, query: str) -> str:
        """The query plus policy words for the chat words in it (corpus/chat_glossary.json).

        Used for BM25 only (evals/ablate_retrieval.py measures it on dev); expanding the dense query
        too measured worse during development (MRR@10 0.848 -> 0.837 on the dev split of the time).
        """
        extra = [self._glossary[w] for w in re.findall(r"[a-z0-9]+", query.lower()) if w in self._glossary]
        return " ".join([query, *dict.fromkeys(extra)])

    def fuse(self, query: str, dense: list[tuple[int, float]], lexical: list[tuple[int, float]], k: int) -> list[Hit]:
        """Weighted reciprocal rank fusion, with clauses of out-of-scope documents down-weighted.

        Weights 2:1 (dense:BM25) were chosen on the dev split. A document with a scope (the WeCom
        rules govern WeCom accounts) counts a little less when the query does not mention that
        scope; on dev this is about neutral, and it lets the general rule lead where a
        product-specific one says the same. evals/ablate_retrieval.py reruns these comparisons.
        """
        rrf, settings = self.settings.rrf_k, self.settings
        fused: dict[int, float] = {}
        for weight, ranking in ((settings.dense_weight, dense), (settings.lexical_weight, lexical)):
            for rank, (position, _) in enumerate(ranking, start=1):
                fused[position] = fused.get(position, 0.0) + weight / (rrf + rank)
        out_of_scope = {doc for doc, pattern in self._scopes.items() if not pattern.search(query)}
        for position in fused:
            if self.clauses[position].document_id in out_of_scope:
                fused[position] *= settings.out_of_scope_weight
        dense_at = {p: (r, s) for r, (p, s) in enumerate(dense, start=1)}
        lexical_at = {p: (r, s) for r, (p, s) in enumerate(lexical, start=1)}
        ordered = sorted(fused.items(), key=lambda item: (-item[1], -(dense_at.get(item[0], (0, -1.0))[1])))[:k]
        return [
            Hit(
                rank=rank,
                clause=self.clauses[position],
                fused_score=round(score, 6),
                dense_score=dense_at[position][1] if position in dense_at else None,
                dense_rank=dense_at[position][0] if position in dense_at else None,
                bm25_score=lexical_at[position][1] if position in lexical_at else None,
                bm25_rank=lexical_at[position][0] if position in lexical_at else None,
            )
            for rank, (position, score) in enumerate(ordered, start=1)
        ]


def _read_glossary(path: Path) -> dict[str, str]:
    """Chat word -> policy words, from corpus/chat_glossary.json (none when the file is absent).

    Raises:
        CorpusError: the file is not UTF-8 JSON holding one object of words (issue 13: `[1, 2]`
            was an AttributeError).
    """
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} is not UTF-8 text: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise CorpusError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(entries, dict):
        raise CorpusError(f"{path} must hold a JSON object of chat word -> policy words, not {type(entries).__name__}")
    return {k.lower(): str(v) for k, v in entries.items() if not k.startswith("_")}


def open_index(settings: Settings | None = None, *, build: BuildPolicy = "missing",
               progress: Progress | None = None) -> PolicyIndex:
    """Load the index named by settings, building it when missing (the usual way in)."""
    return PolicyIndex(settings).load(build=build, progress=progress)
