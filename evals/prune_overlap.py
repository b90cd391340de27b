"""Remove training items that are near-duplicates of evaluation items (or of each other's text).

Evaluation data is gold and stays; a training item too close to any dev or test item is deleted
from its corpus/training file, with a margin below the test's thresholds (tests/test_training.py
fails at packaged-model cosine 0.92 / Chinese character-bigram cosine 0.5). Rerun after adding
training or evaluation data. Run: .venv/bin/python evals/prune_overlap.py [--dry-run]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from policyqa import PACKAGED_MODEL, SentenceTransformerEmbedder, load_settings
from policyqa._indexing import load_clauses
from policyqa._training import NEAR_DUPLICATE_BIGRAMS, check_training_files, near_duplicates, training_files

HERE = Path(__file__).parent
MARGIN = 0.02


def main(dry_run: bool) -> int:
    settings = load_settings()
    files = training_files(settings.corpus_dir)
    items, problems = check_training_files(files, load_clauses(settings))
    duplicate_text = {p.split(": same text as")[0] for p in problems if ": same text as" in p}
    evaluation = [json.loads(line)["text"] for name in ("dev", "test")
                  for line in (HERE / "datasets" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    embedder = SentenceTransformerEmbedder(PACKAGED_MODEL)
    close = near_duplicates([i.text for i in items], evaluation, lambda texts: embedder.encode(texts, batch_size=64),
                            cosine=0.92 - MARGIN, bigrams=NEAR_DUPLICATE_BIGRAMS)
    drop = {items[i].id for i, _, _ in close}
    for i, j, score in close:
        print(f"{score:.3f}  {items[i].id}: {items[i].text[:70]!r}  ~  {evaluation[j][:70]!r}")
    removed = 0
    for path in files:
        kept = []
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if f"{path}:{number}" in duplicate_text:
                removed += 1
                continue
            try:
                if json.loads(line).get("id") in drop:
                    removed += 1
                    continue
            except ValueError:
                pass
            kept.append(line)
        if not dry_run and len(kept) != len(lines):
            path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    print(f"{len(close)} near-duplicates of evaluation items and {len(duplicate_text)} repeated texts; "
          f"{'would remove' if dry_run else 'removed'} {removed} training items")
    return 0


if __name__ == "__main__":
    sys.exit(main("--dry-run" in sys.argv))
