"""Cost against the input's shape: judging a message of 20,000 characters, as one sentence or as
1,000 short ones, against a 1,000-character message of the same words, measured in the same run.
The target (issue 13) is at most 20x for 20x the characters: work grows at most linearly.

Run: .venv/bin/python benchmarks/bench_input_cost.py [--repeat R]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from policyqa import judge, open_index

WORDS = ("selling fake id cards cheap dm me group lucky draw share moments invoices fapiao gambling poker "
         "lunch meeting tomorrow the a of").split()
HAN = "出售假身份证加我微信代开发票今天天气不错我们去吃饭吧"


def words(chars: int, every: int | None, rng: random.Random) -> str:
    """About `chars` characters of policy-ish words; a full stop after every `every` words."""
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(rng.choice(WORDS) + ("." if every and (len(out) + 1) % every == 0 else ""))
    return " ".join(out)[:chars]


def han(chars: int, every: int | None, rng: random.Random) -> str:
    text = "".join(rng.choice(HAN) for _ in range(chars))
    return ("。".join(text[i:i + every] for i in range(0, chars, every)) if every else text)[:chars]


def seconds(index, message: str, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        judge(message, index=index)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    index = open_index()
    judge("warm-up: fake ID cards", index=index)
    rng = random.Random(13)
    cases = {
        "en": (words(1000, 8, rng), {"20k one sentence": words(19_990, None, rng), "20k, 1,000 sentences": words(19_990, 3, rng)}),
        "zh": (han(1000, 15, rng), {"20k one sentence": han(19_990, None, rng), "20k, 1,000 sentences": han(19_990, 19, rng)}),
    }
    for lang, (baseline, shapes) in cases.items():
        base = seconds(index, baseline, args.repeat)
        print(f"{lang} baseline: 1,000 characters {base * 1000:.0f} ms")
        for name, message in shapes.items():
            took = seconds(index, message, args.repeat)
            print(f"{lang} {name:22} {took * 1000:7.0f} ms  {took / base:5.1f}x the baseline (target <= 20x)")


if __name__ == "__main__":
    main()
