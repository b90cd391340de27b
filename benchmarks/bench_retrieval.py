"""Retrieval speed: PolicyQA against the llama-index default pipeline, measured in the same run.

Reports index build time, load time and per-query latency p50/p95 for dense, BM25 and fused
retrieval, each with its ratio to the baseline (SimpleDirectoryReader over the same cleaned texts,
the default SentenceSplitter, the same embedding model, VectorStoreIndex / BM25Retriever /
QueryFusionRetriever with num_queries=1). Ratios below 1 mean PolicyQA is faster.

Run: make bench   (or: .venv/bin/python benchmarks/bench_retrieval.py [--queries N] [--repeat R])
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from policyqa import PolicyIndex, load_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def queries(limit: int) -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "evals/datasets/dev.jsonl").read_text().splitlines() if line.strip()]
    return [row["text"] for row in rows][:limit]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def timed(fn, items, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        for item in items:
            start = time.perf_counter()
            fn(item)
            out.append((time.perf_counter() - start) * 1000)
    return out


def bench_policyqa(home: Path, items: list[str], repeat: int, top_k: int) -> dict:
    settings = load_settings(home=home)
    start = time.perf_counter()
    PolicyIndex(settings).build()
    build = time.perf_counter() - start
    start = time.perf_counter()
    index = PolicyIndex(settings).load()
    load = time.perf_counter() - start
    index.search(items[0])  # warm-up
    limit = settings.candidates
    return {
        "build_s": build,
        "load_s": load,
        "dense_ms": timed(lambda q: index.dense_ranking(index.encode([q]), limit), items, repeat),
        "bm25_ms": timed(lambda q: index.lexical_ranking([index.expand(q)], limit), items, repeat),
        "fused_ms": timed(lambda q: index.search(q, top_k=top_k), items, repeat),
    }


def bench_llama_index(folder: Path, items: list[str], repeat: int, top_k: int) -> dict:
    from llama_index.core import Settings, SimpleDirectoryReader, StorageContext, VectorStoreIndex, load_index_from_storage
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.retrievers.bm25 import BM25Retriever

    from policyqa._indexing import resolve_model_path  # the same model folder as PolicyQA

    model_path = str(resolve_model_path(load_settings().embedding_model))
    Settings.llm = None
    start = time.perf_counter()
    Settings.embed_model = HuggingFaceEmbedding(model_name=model_path, device="cpu")
    documents = SimpleDirectoryReader(str(ROOT / "corpus"), required_exts=[".txt"]).load_data()
    nodes = Settings.node_parser.get_nodes_from_documents(documents)
    vector_index = VectorStoreIndex(nodes)
    vector_index.storage_context.persist(persist_dir=str(folder))
    build = time.perf_counter() - start
    start = time.perf_counter()
    loaded = load_index_from_storage(StorageContext.from_defaults(persist_dir=str(folder)))
    load = time.perf_counter() - start
    dense = loaded.as_retriever(similarity_top_k=top_k)
    lexical = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=top_k)
    fused = QueryFusionRetriever([dense, lexical], similarity_top_k=top_k, num_queries=1,
                                 mode="reciprocal_rerank", use_async=False)
    fused.retrieve(items[0])
    return {
        "build_s": build,
        "load_s": load,
        "chunks": len(nodes),
        "dense_ms": timed(dense.retrieve, items, repeat),
        "bm25_ms": timed(lexical.retrieve, items, repeat),
        "fused_ms": timed(fused.retrieve, items, repeat),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100, help="how many dev questions/messages to time")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the queries")
    parser.add_argument("--top-k", type=int, default=10)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    items = queries(args.queries)
    with tempfile.TemporaryDirectory() as tmp:
        print(f"PolicyQA: building and timing {len(items)} queries x {args.repeat} ...", file=sys.stderr)
        ours = bench_policyqa(Path(tmp) / "policyqa", items, args.repeat, args.top_k)
        print("llama-index default pipeline: building and timing ...", file=sys.stderr)
        base = bench_llama_index(Path(tmp) / "llama", items, args.repeat, args.top_k)

    print(f"\nRetrieval benchmark: {len(items)} queries x {args.repeat}, top-{args.top_k}; "
          f"baseline = llama-index defaults ({base['chunks']} chunks of 1024 tokens)\n")
    print(f"{'measure':<22}{'PolicyQA':>12}{'baseline':>12}{'ratio':>9}")
    for key, label in (("build_s", "index build (s)"), ("load_s", "index load (s)")):
        print(f"{label:<22}{ours[key]:>12.2f}{base[key]:>12.2f}{ours[key] / base[key]:>9.2f}")
    for key, label in (("dense_ms", "dense"), ("bm25_ms", "BM25"), ("fused_ms", "fused")):
        (o50, o95), (b50, b95) = percentiles(ours[key]), percentiles(base[key])
        print(f"{label + ' p50 (ms)':<22}{o50:>12.2f}{b50:>12.2f}{o50 / b50:>9.2f}")
        print(f"{label + ' p95 (ms)':<22}{o95:>12.2f}{b95:>12.2f}{o95 / b95:>9.2f}")
    print("\nPolicyQA indexes each clause as several vectors (headings+text, 24-word windows, examples);"
          "\nthe baseline embeds fewer, larger chunks, so it builds faster but cannot cite a clause.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
