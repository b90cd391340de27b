#!/usr/bin/env python3
"""Check exception_examples.jsonl (python3 standard library only).

Every line must be a JSON object with exactly the keys "file", "quote" and
"examples", where:
  * "file" names a policy text in the seeds directory;
  * "quote", after normalisation (Unicode NFKC, curly quotes -> straight,
    backslashes and asterisks removed, whitespace collapsed, casefolded), is a
    substring of the normalised file text, and lies inside a single line of the
    file (it never spans a line break);
  * the quote is 6-30 words long and unique (after normalisation) across the
    whole JSONL file;
  * "examples" is a list of 4-6 distinct, non-empty strings.
Warnings (not failures): a quote that occurs more than once in its source file,
and an example text repeated on another line.

Usage: python3 check_exception_examples.py [--seeds DIR] [--jsonl FILE]
Exit status 0 when there are no failures, 1 otherwise.
"""
import argparse
import collections
import json
import os
import re
import sys
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SEEDS = "/work/shared/seeds"
DEFAULT_JSONL = os.path.join(HERE, "exception_examples.jsonl")

MIN_WORDS, MAX_WORDS = 6, 30
MIN_EXAMPLES, MAX_EXAMPLES = 4, 6

QUOTE_MAP = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
})


def normalise(text):
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(QUOTE_MAP)
    text = text.replace("\\", "").replace("*", "")
    text = re.sub(r"\s+", " ", text).strip()
    return text.casefold()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default=DEFAULT_SEEDS)
    ap.add_argument("--jsonl", default=DEFAULT_JSONL)
    args = ap.parse_args(argv)

    failures, warnings = [], []
    texts, lines_of = {}, {}

    def load(name):
        if name not in texts:
            path = os.path.join(args.seeds, name)
            if os.path.basename(name) != name or not os.path.isfile(path):
                texts[name] = None
            else:
                with open(path, encoding="utf-8") as fh:
                    raw = fh.read()
                texts[name] = normalise(raw)
                lines_of[name] = [normalise(l) for l in raw.splitlines()]
        return texts[name]

    seen_quotes = {}
    seen_examples = collections.defaultdict(list)
    per_file = collections.Counter()
    n = 0
    with open(args.jsonl, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                failures.append(f"line {lineno}: blank line")
                continue
            n += 1
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                failures.append(f"line {lineno}: invalid JSON ({e})")
                continue
            if not isinstance(obj, dict) or set(obj) != {"file", "quote", "examples"}:
                failures.append(f"line {lineno}: keys must be exactly file, quote, examples")
                continue
            name, quote, examples = obj["file"], obj["quote"], obj["examples"]
            if not isinstance(name, str) or load(name) is None:
                failures.append(f"line {lineno}: unknown file {name!r}")
                continue
            per_file[name] += 1
            if not isinstance(quote, str) or not quote.strip():
                failures.append(f"line {lineno}: quote must be a non-empty string")
                continue
            nq = normalise(quote)
            words = len(nq.split())
            if not MIN_WORDS <= words <= MAX_WORDS:
                failures.append(f"line {lineno}: quote has {words} words "
                                f"(need {MIN_WORDS}-{MAX_WORDS}): {quote[:60]!r}")
            count = texts[name].count(nq)
            if count == 0:
                failures.append(f"line {lineno}: quote not found in {name}: {quote[:80]!r}")
            else:
                if not any(nq in l for l in lines_of[name]):
                    failures.append(f"line {lineno}: quote spans a line break in {name}: "
                                    f"{quote[:80]!r}")
                if count > 1:
                    warnings.append(f"line {lineno}: quote occurs {count} times in {name}")
            if nq in seen_quotes:
                failures.append(f"line {lineno}: duplicate quote (first on line "
                                f"{seen_quotes[nq]}): {quote[:60]!r}")
            else:
                seen_quotes[nq] = lineno
            if not isinstance(examples, list):
                failures.append(f"line {lineno}: examples must be a list")
                continue
            if not MIN_EXAMPLES <= len(examples) <= MAX_EXAMPLES:
                failures.append(f"line {lineno}: {len(examples)} examples "
                                f"(need {MIN_EXAMPLES}-{MAX_EXAMPLES})")
            local = set()
            for ex in examples:
                if not isinstance(ex, str) or not ex.strip():
                    failures.append(f"line {lineno}: empty or non-string example")
                    continue
                ne = normalise(ex)
                if ne in local:
                    failures.append(f"line {lineno}: repeated example {ex[:60]!r}")
                local.add(ne)
                seen_examples[ne].append(lineno)

    for ne, where in seen_examples.items():
        if len(set(where)) > 1:
            warnings.append(f"example repeated on lines {sorted(set(where))}: {ne[:60]!r}")

    for w in warnings:
        print("WARNING:", w)
    for f in failures:
        print("FAIL:", f)
    print(f"{n} lines checked; per file: " +
          ", ".join(f"{k}={v}" for k, v in sorted(per_file.items())))
    print(f"{len(failures)} failure(s), {len(warnings)} warning(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
