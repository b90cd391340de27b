"""Index build embedding speed: the texts a build embeds (clause wording, phrase windows, quote
spans, training examples), embedded as the build does it (each distinct text once, sorted by
length, batches of about TOKEN_BUDGET word pieces: `embed_unique`) against the way builds did it
before (batches of 32 in build order, one model call each, duplicates included), measured in the
same run with the same model; then a rebuild, where the vector cache holds every text.

Run: .venv/bin/python benchmarks/bench_build.py [--sample N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from policyqa import SentenceTransformerEmbedder, load_settings
import tempfile
from pathlib import Path

from policyqa._indexing import VectorCache, embed_unique, plan_build


def naive(texts: list[str], embedder, batch_size: int) -> float:
    """The earlier build: consecutive batches in build order, each its own model call."""
    start = time.perf_counter()
    for at in range(0, len(texts), batch_size):
        embedder.encode(texts[at : at + batch_size], batch_size=batch_size)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=0,
                        help="Embed a random sample of this many texts of each side (0: all, a few minutes).")
    args = parser.parse_args()
    settings = load_settings()
    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    plan = plan_build(settings, embedder)
    clause_side = plan.clause_inputs + plan.span_texts
    item_side = [item.text for item in plan.items]
    if args.sample:
        rng = random.Random(0)
        clause_side = rng.sample(clause_side, min(args.sample, len(clause_side)))
        item_side = rng.sample(item_side, min(args.sample, len(item_side)))
    embedder.encode(["warm up"])
    quiet = lambda stage, done, total: None  # noqa: E731
    print(f"\nBuild embedding benchmark: {len(clause_side)} clause-side texts ({len(set(clause_side))} distinct), "
          f"{len(item_side)} training texts ({len(set(item_side))} distinct)\n")
    print(f"{'':<34}{'seconds':>9}{'texts/s':>9}{'speed-up':>10}")
    total_old = total_new = 0.0
    for label, texts in (("clause side", clause_side), ("training examples", item_side)):
        old = naive(texts, embedder, settings.embedding_batch_size)
        start = time.perf_counter()
        embed_unique(texts, embedder, progress=quiet)
        new = time.perf_counter() - start
        total_old, total_new = total_old + old, total_new + new
        print(f"{label + ' (before: batches of 32)':<34}{old:>9.1f}{len(texts) / old:>9.1f}{'(baseline)':>10}")
        print(f"{label + ' (embed_unique)':<34}{new:>9.1f}{len(texts) / new:>9.1f}{old / new:>9.2f}x")
    print(f"{'first build, all':<34}{total_new:>9.1f}{'':>9}{total_old / total_new:>9.2f}x   (target: >= 3x)")
    with tempfile.TemporaryDirectory() as folder:
        cache = VectorCache(Path(folder), "bench")
        embed_unique(clause_side + item_side, embedder, progress=quiet, cache=cache)
        start = time.perf_counter()
        embed_unique(clause_side + item_side, embedder, progress=quiet, cache=VectorCache(Path(folder), "bench"))
        again = time.perf_counter() - start
    print(f"{'rebuild (vector cache), all':<34}{again:>9.1f}{'':>9}{total_old / again:>9.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
