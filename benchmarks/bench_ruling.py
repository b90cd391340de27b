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
    zh_questions, zh_messages = load("question", args.items, "zh"), load("message", args.items, "zh")
    judge(messages[0], index=index), ask(questions[0], index=index)  # warm caches and the model
    judge(zh_messages[0], index=index), ask(zh_questions[0], index=index)
    cases = [("ask", "search (questions)", lambda t: ask(t, index=index), questions),
             ("judge", "search (messages)", lambda t: judge(t, index=index), messages),
             ("ask (zh)", "search (zh questions)", lambda t: ask(t, index=index), zh_questions),
             ("judge (zh)", "search (zh messages)", lambda t: judge(t, index=index), zh_messages)]
    print(f"\nRuling benchmark: dev split, up to {args.items} items of each kind x {args.repeat}; "
          f"ratio = engine / search on the same texts\n")
    print(f"{'':<22}{'items':>6}{'p50 ms':>9}{'p95 ms':>9}{'items/s':>9}{'p50 ratio':>11}{'throughput ratio':>18}")
    for label, base_label, fn, texts in cases:
        base = latencies(lambda t: index.search(t), texts, args.repeat)
        samples = latencies(fn, texts, args.repeat)
        b50, b95, brate = p(base, 0.5), p(base, 0.95), 1000 * len(base) / sum(base)
        p50, p95, rate = p(samples, 0.5), p(samples, 0.95), 1000 * len(samples) / sum(samples)
        print(f"{base_label:<22}{len(texts):>6}{b50:>9.1f}{b95:>9.1f}{brate:>9.1f}{'(baseline)':>11}")
        print(f"{label:<22}{len(texts):>6}{p50:>9.1f}{p95:>9.1f}{rate:>9.1f}{p50 / b50:>11.2f}{rate / brate:>18.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
