#!/usr/bin/env python3
"""Check clause_examples.jsonl and benign_examples.jsonl (stdlib only).

For clause_examples.jsonl every line must be a JSON object with exactly the keys
"file", "quote" and "examples", where:
  * "file" names a policy text in the seeds directory;
  * "quote", after normalisation (NFKC, curly quotes -> straight, backslashes and
    asterisks removed, whitespace collapsed, casefolded), is a substring of the
    normalised file text, and lies inside a single line of the file (it never
    spans a line break);
  * the quote is 6-25 words long and unique (after normalisation) across the file;
  * "examples" is a list of 3-5 distinct, non-empty strings.
Warnings (not failures): a quote that occurs more than once in its source file,
and an example text repeated on another line.

For benign_examples.jsonl every line must be {"text": ..., "near": ...} with
non-empty strings, texts unique, and at least 60 lines.

Usage: python3 check_examples.py [--seeds DIR] [--clauses FILE] [--benign FILE]
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


def load_jsonl(path, errors):
    rows = []
    if not os.path.exists(path):
        errors.append(f"{path}: file not found")
        return rows
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                errors.append(f"{os.path.basename(path)}:{n}: blank line")
                continue
            try:
                rows.append((n, json.loads(raw)))
            except json.JSONDecodeError as exc:
                errors.append(f"{os.path.basename(path)}:{n}: invalid JSON ({exc})")
    return rows


def check_clauses(path, seeds, errors, warnings):
    rows = load_jsonl(path, errors)
    texts, lines_cache = {}, {}
    seen_quotes = {}
    example_seen = collections.defaultdict(list)
    per_file = collections.Counter()
    for n, obj in rows:
        where = f"clause_examples.jsonl:{n}"
        if not isinstance(obj, dict) or set(obj) != {"file", "quote", "examples"}:
            errors.append(f"{where}: expected exactly keys file, quote, examples")
            continue
        fname, quote, examples = obj["file"], obj["quote"], obj["examples"]
        if not isinstance(fname, str) or not isinstance(quote, str):
            errors.append(f"{where}: file and quote must be strings")
            continue
        fpath = os.path.join(seeds, fname)
        if os.path.basename(fname) != fname or not os.path.isfile(fpath):
            errors.append(f"{where}: unknown source file {fname!r}")
            continue
        if fname not in texts:
            with open(fpath, encoding="utf-8") as fh:
                raw = fh.read()
            texts[fname] = normalise(raw)
            lines_cache[fname] = [normalise(line) for line in raw.splitlines()]
        per_file[fname] += 1
        if "\n" in quote or "\r" in quote:
            errors.append(f"{where}: quote contains a line break")
        nq = normalise(quote)
        words = len(nq.split())
        if not 6 <= words <= 25:
            errors.append(f"{where}: quote has {words} words (need 6-25): {quote!r}")
        count = texts[fname].count(nq) if nq else 0
        if count == 0:
            errors.append(f"{where}: quote not found in {fname}: {quote!r}")
        else:
            if not any(nq in line for line in lines_cache[fname]):
                errors.append(f"{where}: quote spans a line break in {fname}: {quote!r}")
            if count > 1:
                warnings.append(f"{where}: quote occurs {count} times in {fname}: {quote!r}")
        if nq in seen_quotes:
            errors.append(f"{where}: duplicate quote (first on line {seen_quotes[nq]}): {quote!r}")
        else:
            seen_quotes[nq] = n
        if not isinstance(examples, list) or not 3 <= len(examples) <= 5:
            got = len(examples) if isinstance(examples, list) else type(examples).__name__
            errors.append(f"{where}: need 3-5 examples, got {got}")
            continue
        if not all(isinstance(e, str) and e.strip() for e in examples):
            errors.append(f"{where}: every example must be a non-empty string")
            continue
        if len({normalise(e) for e in examples}) != len(examples):
            errors.append(f"{where}: repeated example within the line")
        for e in examples:
            example_seen[normalise(e)].append(n)
    for ex, where in example_seen.items():
        if len(set(where)) > 1:
            warnings.append(f"example repeated on lines {sorted(set(where))}: {ex!r}")
    return per_file, len(rows)


def check_benign(path, errors):
    rows = load_jsonl(path, errors)
    seen = {}
    for n, obj in rows:
        where = f"benign_examples.jsonl:{n}"
        if not isinstance(obj, dict) or set(obj) != {"text", "near"}:
            errors.append(f"{where}: expected exactly keys text, near")
            continue
        if not all(isinstance(obj[k], str) and obj[k].strip() for k in ("text", "near")):
            errors.append(f"{where}: text and near must be non-empty strings")
            continue
        key = normalise(obj["text"])
        if key in seen:
            errors.append(f"{where}: duplicate text (first on line {seen[key]})")
        seen[key] = n
    if len(rows) < 60:
        errors.append(f"benign_examples.jsonl: {len(rows)} lines, need at least 60")
    return len(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default=DEFAULT_SEEDS)
    ap.add_argument("--clauses", default=os.path.join(HERE, "clause_examples.jsonl"))
    ap.add_argument("--benign", default=os.path.join(HERE, "benign_examples.jsonl"))
    args = ap.parse_args()
    errors, warnings = [], []
    per_file, total = check_clauses(args.clauses, args.seeds, errors, warnings)
    n_benign = check_benign(args.benign, errors)
    if total < 150:
        errors.append(f"clause_examples.jsonl: {total} lines, need at least 150")
    for w in warnings:
        print("WARNING:", w)
    for e in errors:
        print("FAIL:", e)
    print("clause lines per file:")
    for fname in sorted(per_file):
        print(f"  {fname}: {per_file[fname]}")
    print(f"clause lines total: {total}")
    print(f"benign lines: {n_benign}")
    print(f"warnings: {len(warnings)}  failures: {len(errors)}")
    print("RESULT:", "OK" if not errors else "FAILED")
    return 0 if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
