"""Would ONNX Runtime make builds faster? The packaged model exported with torch.onnx.export and run
by onnxruntime, against sentence-transformers on PyTorch, on the same length-sorted batches of about
TOKEN_BUDGET word pieces (as a build embeds), alternating, in the same run. Prints the speed ratio and
the largest difference between the two runtimes' vectors.

Not part of `make bench`: onnx and onnxruntime are not dependencies (the answer was no: README,
"Why a first build is not 3x faster"). Run:
  .venv/bin/pip install onnx onnxruntime && .venv/bin/python benchmarks/bench_onnx.py [--texts 1200] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from policyqa import SentenceTransformerEmbedder, load_settings
from policyqa._indexing import TOKEN_BUDGET, plan_build


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    try:
        import onnxruntime as ort
        import torch
    except ImportError:
        print("needs onnx and onnxruntime: .venv/bin/pip install onnx onnxruntime", file=sys.stderr)
        return 2
    embedder = SentenceTransformerEmbedder(load_settings().embedding_model)
    model = embedder._model
    tokenizer = model.tokenizer
    plan = plan_build(load_settings(), embedder)
    texts = sorted(set(plan.clause_inputs + [item.text for item in plan.items]))[: args.texts]
    texts.sort(key=lambda t: len(tokenizer(t)["input_ids"]))
    batches, at = [], 0
    while at < len(texts):
        size = max(1, TOKEN_BUDGET // min(len(tokenizer(texts[at])["input_ids"]), model.max_seq_length))
        batches.append(texts[at : at + size])
        at += size

    class Hidden(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = tokenizer(["a short text", "a somewhat longer text to export with"], padding=True, return_tensors="pt")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        torch.onnx.export(Hidden(model[0].auto_model.eval()), tuple(sample[n] for n in names), str(path),
                          input_names=names, output_names=["hidden"], opset_version=17, dynamo=False,
                          dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]})
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def onnx_encode(batch: list[str]) -> np.ndarray:
        encoded = tokenizer(batch, padding=True, truncation=True, max_length=model.max_seq_length, return_tensors="np")
        hidden = session.run(None, {n: encoded[n].astype(np.int64) for n in names})[0]
        mask = encoded["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.clip(mask.sum(1), 1e-9, None)
        return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

    print(f"\n{len(texts)} texts in {len(batches)} batches of about {TOKEN_BUDGET} word pieces\n")
    for run in range(1, args.runs + 1):
        start = time.perf_counter()
        torch_vectors = np.concatenate([embedder.encode(b, batch_size=len(b)) for b in batches])
        torch_seconds = time.perf_counter() - start
        start = time.perf_counter()
        onnx_vectors = np.concatenate([onnx_encode(b) for b in batches])
        onnx_seconds = time.perf_counter() - start
        print(f"run {run}: PyTorch {torch_seconds:.2f} s, ONNX Runtime {onnx_seconds:.2f} s: "
              f"{torch_seconds / onnx_seconds:.2f}x; largest difference {np.abs(torch_vectors - onnx_vectors).max():.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
