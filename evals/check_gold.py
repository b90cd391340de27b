"""Check hand-written gold items (evals/authoring/*.jsonl, or the files named) before splitting.

Every item must fit the EvalItem schema; every gold quote must be verbatim (after
policyqa.normalise_for_match) in its source file and inside at least one clause; gold is empty
exactly for not_covered and no_violation items; ids are unique across all authoring files.

Run: .venv/bin/python evals/check_gold.py [FILE ...]     (exit status 1 when anything is wrong)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import ValidationError

from policyqa import EvalItem, load_settings, normalise_for_match
from policyqa._indexing import load_clauses

HERE = Path(__file__).parent


def problems_in(paths: list[Path]) -> tuple[int, list[str]]:
    settings = load_settings()
    sources = {p.name: normalise_for_match(p.read_text(encoding="utf-8")) for p in (settings.corpus_dir / "sources").glob("*.txt")}
    clauses = [normalise_for_match(c.text) for c in load_clauses(settings)]
    seen: dict[str, str] = {}
    every = sorted((HERE / "authoring").glob("*.jsonl"))
    for path in every:  # ids must be unique across all authoring files, not only the checked ones
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                seen.setdefault(json.loads(line)["id"], f"{path.name}:{number}")
            except (ValueError, KeyError, TypeError):
                continue
    count, problems = 0, []
    for path in paths:
        ids: set[str] = set()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                item = EvalItem.model_validate(json.loads(line))
            except (ValueError, ValidationError) as exc:
                problems.append(f"{where}: {' '.join(str(exc).split())[:300]}")
                continue
            count += 1
            if item.id in ids or seen.get(item.id, f"{path.name}:{number}") != f"{path.name}:{number}":
                problems.append(f"{where}: id {item.id!r} is used twice")
            ids.add(item.id)
            allowed = {"prohibited", "allowed", "informational", "not_covered"} if item.kind == "question" else {"violation", "no_violation"}
            if item.expected_verdict not in allowed:
                problems.append(f"{where}: verdict {item.expected_verdict!r} does not fit kind {item.kind!r}")
            if (not item.gold) != (item.expected_verdict in {"not_covered", "no_violation"}):
                problems.append(f"{where}: gold must be empty exactly for not_covered and no_violation items")
            for gold in item.gold:
                quote = normalise_for_match(gold.quote or "")
                if gold.clause:
                    continue
                if not quote:
                    problems.append(f"{where}: a gold citation needs a quote")
                elif gold.file not in sources or quote not in sources[gold.file]:
                    problems.append(f"{where}: quote {gold.quote[:60]!r} is not in source file {gold.file!r}")
                elif not any(quote in text for text in clauses):
                    problems.append(f"{where}: quote {gold.quote[:60]!r} spans clauses; quote within one clause")
    return count, problems


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv] or sorted((HERE / "authoring").glob("*.jsonl"))
    count, problems = problems_in(paths)
    for problem in problems:
        print(problem)
    print(f"{count} items checked; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
