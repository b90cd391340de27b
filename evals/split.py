"""Split the hand-written gold items (evals/authoring/*.jsonl) into dev and test, with the clauses the
blind completeness audit added (evals/authoring/audit/) appended to their gold.

Stratified, deterministic and stable: an item already in dev or test stays there (thresholds were
fitted on dev, so moving an item would leak it into test). New items are dealt within each
(kind, expected_verdict) group, ordered by the SHA-1 of their id, alternately to whichever split has
fewer items of that group. Run: python evals/split.py
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
AUTHORING = HERE / "authoring"
DATASETS = HERE / "datasets"
FIELDS = ("id", "kind", "text", "expected_verdict", "gold", "note", "lang", "product")


def add_audit(groups: dict[tuple[str, str, str], list[dict]]) -> None:
    """Append the blind completeness audit's clauses (evals/authoring/audit/*.jsonl: {"id", "add":
    [{"clause", "why"}]}) to each item's gold, marked "audit" so the report can score without them."""
    additions: dict[str, list[str]] = defaultdict(list)
    for path in sorted((AUTHORING / "audit").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                additions[row["id"]].extend(entry["clause"] for entry in row.get("add", []))
    for items in groups.values():
        for item in items:
            have = {gold.get("clause") for gold in item["gold"]}
            for clause_id in dict.fromkeys(additions.pop(item["id"], [])):
                if clause_id not in have:
                    item["gold"].append({"clause": clause_id, "audit": True})
    if additions:
        raise SystemExit(f"the audit names items that do not exist: {sorted(additions)[:5]}")


def main() -> None:
    groups: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for path in sorted(AUTHORING.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                groups[(item.get("lang", "en"), item["kind"], item["expected_verdict"])].append({k: item[k] for k in FIELDS if k in item})
    add_audit(groups)
    assigned = {}
    for name in ("dev", "test"):
        path = DATASETS / f"{name}.jsonl"
        if path.is_file():
            assigned.update({json.loads(line)["id"]: name for line in path.read_text(encoding="utf-8").splitlines() if line.strip()})
    splits: dict[str, list[dict]] = {"dev": [], "test": []}
    for key in sorted(groups):
        ordered = sorted(groups[key], key=lambda item: hashlib.sha1(item["id"].encode()).hexdigest())
        counts = {"dev": 0, "test": 0}
        for item in ordered:
            if item["id"] in assigned:
                counts[assigned[item["id"]]] += 1
        for item in ordered:
            name = assigned.get(item["id"])
            if name is None:
                name = "dev" if counts["dev"] <= counts["test"] else "test"
                counts[name] += 1
            splits[name].append(item)
    DATASETS.mkdir(exist_ok=True)
    for name, items in splits.items():
        items.sort(key=lambda item: item["id"])
        with (DATASETS / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(f"{name}: {len(items)} items")


if __name__ == "__main__":
    main()
