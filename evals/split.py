"""Split the hand-written gold items (evals/authoring/*.jsonl) into dev and test.

Stratified and deterministic: within each (kind, expected_verdict) group, items are ordered by the
SHA-1 of their id and dealt alternately to dev and test, so both splits keep the verdict mix and a
re-run yields the same split. Run: python evals/split.py
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
AUTHORING = HERE / "authoring"
DATASETS = HERE / "datasets"
FIELDS = ("id", "kind", "text", "expected_verdict", "gold", "note")


def main() -> None:
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for path in sorted(AUTHORING.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                groups[(item["kind"], item["expected_verdict"])].append({k: item[k] for k in FIELDS if k in item})
    splits: dict[str, list[dict]] = {"dev": [], "test": []}
    for key in sorted(groups):
        ordered = sorted(groups[key], key=lambda item: hashlib.sha1(item["id"].encode()).hexdigest())
        for position, item in enumerate(ordered):
            splits["dev" if position % 2 == 0 else "test"].append(item)
    DATASETS.mkdir(exist_ok=True)
    for name, items in splits.items():
        items.sort(key=lambda item: item["id"])
        with (DATASETS / f"{name}.jsonl").open("w", encoding="utf-8") as handle:
            for item in items:
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
        print(f"{name}: {len(items)} items")


if __name__ == "__main__":
    main()
