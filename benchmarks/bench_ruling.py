"""Ruling speed: ask and judge latency p50/p95 and batch throughput, against retrieval alone
(PolicyIndex.search on the same texts) measured in the same run. Ratios above 1 are the cost of
deciding (evidence per sentence, benign comparison, quote selection) on top of retrieving.

Run: .venv/bin/python benchmarks/bench_ruling.py [--items N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from policyqa import ask, judge, open_index

ROOT = Path(__file__).resolve().parents[1]


def load(kind: str, limit: int, lang: str = "en") -> list[str]:
    rows = [json.loads(line) for line in (ROOT / "evals/datasets/dev.jsonl").read_text().splitlines() if line.strip()]
    return [r["text"] for r in rows if r["kind"] == kind and r.get("lang", "en") == lang][:limit]


def latencies(fn, texts: list[str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        for text in texts:
            start = time.perf_counter()
            fn(text)
            out.append((time.perf_counter() - start) * 1000)
    return out


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return statistics.median(ordered) if q == 0.5 else ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    index = open_index()
    questions, messages = load("question", args.items), load("message", args.items)
    judge(messages[0], index=index), ask(questions[0], index=index)  # warm caches and the model
    rows = []
    for label, fn, texts in (("search (questions)", lambda t: index.search(t), questions),
                             ("ask", lambda t: ask(t, index=index), questions),
                             ("search (messages)", lambda t: index.search(t), messages),
                             ("judge", lambda t: judge(t, index=index), messages)):
        samples = latencies(fn, texts, args.repeat)
        rows.append((label, p(samples, 0.5), p(samples, 0.95), 1000 * len(samples) / sum(samples)))
    base = {"ask": rows[0], "judge": rows[2]}
    print(f"\nRuling benchmark: {len(questions)} questions, {len(messages)} messages x {args.repeat} (dev split)\n")
    print(f"{'':<20}{'p50 ms':>9}{'p95 ms':>9}{'items/s':>9}{'p50 ratio':>11}{'throughput ratio':>18}")
    for label, p50, p95, rate in rows:
        ref = base.get(label)
        ratio = f"{p50 / ref[1]:>11.2f}{rate / ref[3]:>18.2f}" if ref else f"{'(baseline)':>11}{'':>18}"
        print(f"{label:<20}{p50:>9.1f}{p95:>9.1f}{rate:>9.1f}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
