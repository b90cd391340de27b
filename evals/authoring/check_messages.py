#!/usr/bin/env python3
"""Check messages.jsonl: schema, unique ids, and verbatim gold quotes.

Usage: python3 check_messages.py [messages.jsonl] [seeds_dir]
Exit status 0 iff zero problems.

Quote check: quote and source are normalised (NFKC, curly quotes -> straight,
backslashes and asterisks removed, whitespace collapsed, casefold); the quote
must be a substring of its source file, and also of a single source line
(i.e. it may not span a line break). Quotes must have 6-30 words.
"""
import json
import os
import re
import sys
import unicodedata
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
MFILE = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "messages.jsonl")
SEEDS = sys.argv[2] if len(sys.argv) > 2 else "/work/shared/seeds"

VERDICTS = {"violation", "no_violation"}
KEYS = {"id", "kind", "text", "expected_verdict", "gold", "note"}
CURLY = {"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'",
         "\u2032": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
         "\u201f": '"', "\u2033": '"'}


def norm(s):
    s = unicodedata.normalize("NFKC", s)
    for k, v in CURLY.items():
        s = s.replace(k, v)
    s = s.replace("\\", "").replace("*", "")
    s = re.sub(r"\s+", " ", s).strip()
    return s.casefold()


def main():
    problems, warnings = [], []
    cache = {}

    def source(name):
        if name not in cache:
            path = os.path.join(SEEDS, name)
            if os.path.basename(name) != name or not os.path.isfile(path):
                cache[name] = None
            else:
                with open(path, encoding="utf-8") as f:
                    raw = f.read()
                cache[name] = (norm(raw), [norm(l) for l in raw.splitlines()])
        return cache[name]

    ids = Counter()
    verdicts = Counter()
    files_cited = Counter()
    n_items = n_quotes = 0
    with open(MFILE, encoding="utf-8") as f:
        lines = f.readlines()
    for ln, line in enumerate(lines, 1):
        if not line.strip():
            problems.append(f"line {ln}: blank line")
            continue
        try:
            it = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {ln}: invalid JSON: {e}")
            continue
        if not isinstance(it, dict):
            problems.append(f"line {ln}: not a JSON object")
            continue
        n_items += 1
        iid = it.get("id", f"<line {ln}>")
        if set(it) != KEYS:
            problems.append(f"{iid}: keys {sorted(it)} != {sorted(KEYS)}")
        if not isinstance(it.get("id"), str) or not re.fullmatch(r"m-\d{3,}", it.get("id") or ""):
            problems.append(f"{iid}: bad id format (want m-NNN)")
        ids[str(it.get("id"))] += 1
        if it.get("kind") != "message":
            problems.append(f"{iid}: kind must be 'message'")
        for k in ("text", "note"):
            if not isinstance(it.get(k), str) or not it.get(k, "").strip():
                problems.append(f"{iid}: '{k}' must be a non-empty string")
        v = it.get("expected_verdict")
        if v not in VERDICTS:
            problems.append(f"{iid}: bad expected_verdict {v!r}")
        verdicts[v] += 1
        gold = it.get("gold")
        if not isinstance(gold, list):
            problems.append(f"{iid}: gold must be a list")
            continue
        if v == "no_violation" and gold:
            problems.append(f"{iid}: no_violation item must have empty gold")
        if v == "violation" and not gold:
            problems.append(f"{iid}: violation item needs at least one gold citation")
        seen = set()
        for gi, g in enumerate(gold):
            tag = f"{iid} gold[{gi}]"
            if not isinstance(g, dict) or set(g) != {"quote", "file"}:
                problems.append(f"{tag}: must be an object with exactly 'quote' and 'file'")
                continue
            q, fn = g["quote"], g["file"]
            if not isinstance(q, str) or not isinstance(fn, str):
                problems.append(f"{tag}: quote/file must be strings")
                continue
            n_quotes += 1
            files_cited[fn] += 1
            src = source(fn)
            if src is None:
                problems.append(f"{tag}: unknown source file {fn!r}")
                continue
            if "\n" in q:
                problems.append(f"{tag}: quote contains a line break")
            nw = len(q.split())
            if not 6 <= nw <= 30:
                problems.append(f"{tag}: quote has {nw} words (need 6-30): {q!r}")
            nq = norm(q)
            if (fn, nq) in seen:
                problems.append(f"{tag}: duplicate citation within item")
            seen.add((fn, nq))
            full, flines = src
            if nq not in full:
                problems.append(f"{tag}: NOT FOUND in {fn}: {q!r}")
            elif not any(nq in l for l in flines):
                problems.append(f"{tag}: spans a line break in {fn}: {q!r}")
            else:
                # heuristic: a sentence boundary inside the quote
                inner = re.sub(r"\b(e\.g|i\.e|etc|no|vs)\.", "", nq)
                inner = re.sub(r"\d\.\d", "", inner)
                if re.search(r"[.!?] [a-z\"(]", inner):
                    warnings.append(f"{tag}: may span a sentence boundary: {q!r}")
    for i, c in ids.items():
        if c > 1:
            problems.append(f"duplicate id {i} ({c}x)")

    print(f"items: {n_items}  quotes: {n_quotes}")
    print("verdicts: " + ", ".join(f"{k}={verdicts[k]}" for k in sorted(VERDICTS)))
    print("citations per file: " + ", ".join(f"{k}={v}" for k, v in sorted(files_cited.items())))
    for w in warnings:
        print("WARNING", w)
    for p in problems:
        print("PROBLEM", p)
    print(f"{len(problems)} problems, {len(warnings)} warnings")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
