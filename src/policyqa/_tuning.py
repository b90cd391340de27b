"""Tuning stage (index time): the packaged MiniLM -> a query encoder tuned on the training data.

Query-side tuning: the clauses keep the vectors the packaged model gives them (embedded once, at
index time), and a copy of the model learns to map chat messages and questions onto the clause
they are about, with a softmax over every clause (all 650 are negatives at once, for free, because
their vectors are fixed). Only short texts are back-propagated, which keeps it inside the build's
time budget on two CPU cores.

Chosen on dev (the README gives the comparison; evals/experiment_tuning.py reruns it): against the
packaged model for everything, the tuned query encoder lowered the message model's log-loss from
0.148 to 0.112 and raised the fused search's hit@3 from 0.900 to 0.938 on the English dev items.

Deterministic on a given machine: seeded shuffling and initialisation, deterministic torch kernels.
The result is cached under a hash of everything it depends on, so a rebuild with the same corpus
and training data does not tune again.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._training import TrainingItem

TUNING_RECIPE = "query-side softmax over clauses; epochs 0.8; batch 64; lr 5e-5; scale 20; max 64 tokens; seed 13"
EPOCHS = 0.8
"""One epoch measured best on dev (message log-loss 0.112) but took 156 s; 0.6 epoch at a higher
rate cost 0.012 log-loss for 60 s less. 0.8 keeps the whole build under five minutes."""
BATCH = 64
LEARNING_RATE = 5e-5
SCALE = 20.0
MAX_TOKENS = 64
SEED = 13
SECOND_CLAUSE_WEIGHT = 0.5
"""A training item's further clauses are targets too, at half the weight of the one it was written for."""

Progress = Callable[[str, int, int], None]


def tuning_key(base_identity: str, targets: np.ndarray, pairs: list[tuple[str, list[int]]]) -> str:
    """Hash of everything the tuned model depends on."""
    digest = hashlib.sha256()
    digest.update(f"{TUNING_RECIPE}|{base_identity}".encode())
    digest.update(np.ascontiguousarray(targets, dtype=np.float32).round(5).tobytes())
    for text, positions in pairs:
        digest.update(json.dumps([text, positions], ensure_ascii=False).encode())
    return digest.hexdigest()[:20]


def tuning_pairs(items: list[TrainingItem], position: dict[str, int]) -> list[tuple[str, list[int]]]:
    """(text, clause positions it is about) for every training item that names clauses."""
    return [(item.text, [position[c] for c in item.clause_ids if c in position]) for item in items if item.clauses]


def tune_query_model(base_path: Path, targets: np.ndarray, pairs: list[tuple[str, list[int]]], out: Path, *,
                     cache: Path | None = None, base_identity: str = "", progress: Progress | None = None) -> Path:
    """Tune a copy of the model at `base_path` so each text lands on its clauses' target vectors;
    save it to `out` (from `cache` when the same inputs were tuned before) and return `out`."""
    report = progress or (lambda stage, done, total: None)
    key = tuning_key(base_identity, targets, pairs)
    cached = cache / f"query-model-{key}" if cache else None
    if cached is not None and (cached / "DONE").is_file():
        shutil.copytree(cached, out, ignore=shutil.ignore_patterns("DONE"))
        report("tune", 1, 1)
        return out

    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    model = SentenceTransformer(str(base_path), device="cpu")
    model.max_seq_length = MAX_TOKENS
    order = list(range(len(pairs)))
    random.Random(SEED).shuffle(order)
    steps = max(1, int(len(pairs) / BATCH * EPOCHS)) if pairs else 0
    clause_matrix = torch.tensor(np.asarray(targets, dtype=np.float32))
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / max(1.0, 0.1 * steps)) * max(0.0, (steps - s) / steps))
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        batch = [pairs[order[(step * BATCH + i) % len(pairs)]] for i in range(BATCH)]
        encoded = F.normalize(model(model.tokenize([text for text, _ in batch]))["sentence_embedding"], dim=-1)
        logits = SCALE * encoded @ clause_matrix.T
        wanted = torch.zeros_like(logits)
        for row, (_, positions) in enumerate(batch):
            for rank, pos in enumerate(positions):
                wanted[row, pos] += 1.0 if rank == 0 else SECOND_CLAUSE_WEIGHT
        wanted = wanted / wanted.sum(dim=1, keepdim=True).clamp(min=1e-9)
        loss = -(wanted * F.log_softmax(logits, dim=-1)).sum(dim=1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        report("tune", step + 1, steps)
    model.eval()
    model.max_seq_length = 256  # inputs at query time may be longer than the training texts
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    (out / "tuning.json").write_text(json.dumps({"recipe": TUNING_RECIPE, "key": key, "pairs": len(pairs), "steps": steps,
                                                 "seconds": round(time.perf_counter() - started, 1)}) + "\n")
    if cached is not None:
        staging = cached.with_name(cached.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(out, staging)
        (staging / "DONE").write_text("ok\n")
        shutil.rmtree(cached, ignore_errors=True)
        staging.rename(cached)
    return out
