"""Batches on Ray Data (`policyqa judge --file ... --ray`): the rulings the single-process batch
gives, one row per input id, and a rerun that rules only the ids the output lacks."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import time

import pytest
from typer.testing import CliRunner

from policyqa import ConfigError, InvalidInputError, judge_many, load_settings, open_store, run_rows
from policyqa.cli import app

ray = pytest.importorskip("ray")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from policyqa import judge_with_ray  # noqa: E402 - after the importorskip

MESSAGES = 10_000
OPENERS = ["", "hi all, ", "Hello! ", "quick note: ", "FYI ", "嗨，", "朋友们，"]
VIOLATING = [
    "selling fake ID cards, any province",
    "fapiao invoices for any amount, 3% fee",
    "I can unlock any WeChat account for you",
    "cheap followers and likes, 10,000 for 50 yuan",
    "replica designer bags, same as the real thing",
    "earn 500 a day, just recruit three friends who each pay the entry fee",
    "出售假身份证，全国各地都能办",
    "代开发票，各行业都有",
    "刷单兼职，日结工资",
]
BENIGN = [
    "the team lunch moved to Friday at noon",
    "can you send me the slides from yesterday's meeting",
    "our bakery opens at 8 on Saturdays, come try the new bread",
    "happy birthday, hope you have a great day",
    "the train to Shanghai is delayed by twenty minutes",
    "明天下午三点开会，别忘了带电脑",
    "周末一起去爬山吗",
    "新年快乐，万事如意",
]
CLOSERS = ["", ", add my wx", ", DM me", " 加我微信", ", thanks", " 谢谢", ", see you soon"]
BAD = ["", "   ", None, "x " * 15_000, "こんにちは、元気ですか"]  # empty, blank, missing, too long, Japanese


def messages(n: int) -> list[dict]:
    """n rows {"id", "text"}, the same every time: violating and benign English and Chinese bodies
    with openers and closers (every third numbered, so few texts repeat), and a bad row every 997."""
    combos = itertools.cycle(itertools.product(OPENERS, VIOLATING + BENIGN, CLOSERS))
    rows = []
    for i in range(n):
        if i % 997 == 500:
            text = BAD[(i // 997) % len(BAD)]
        else:
            opener, body, closer = next(combos)
            text = f"{opener}{body}{closer}" + (f" (#{i % 37})" if i % 3 else "")
        rows.append({"id": f"m{i:05d}", "text": text})
    return rows


AUDIT_STAMP = ("record_id", "recorded_at", "index_fingerprint", "model")
"""Fields a ruling carries from the audit trail: they name this ruling's record, so no two runs share them."""


def unstamped(record: dict) -> dict:
    """The ruling without its audit stamp, after checking a ruling has one."""
    if "error" not in record:
        assert record["record_id"] and record["model"]
    return {k: v for k, v in record.items() if k not in AUDIT_STAMP}


def output_records(out_dir) -> list[dict]:
    """The Parquet output as the single-process batch's records: {"id", **ruling} or {"id", "error"}."""
    rows = pq.read_table(sorted(str(p) for p in out_dir.glob("*.parquet"))).to_pylist()
    return [unstamped({"id": r["id"], **json.loads(r["ruling"])}) if r["ruling"] is not None
            else {"id": r["id"], "error": r["error"]} for r in rows]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return messages(MESSAGES)


@pytest.fixture(scope="module")
def single_process(rows, real_index) -> dict[str, dict]:
    """What `policyqa judge --file ... --out x.jsonl` writes, by id (read_rows makes a missing text empty)."""
    started = time.monotonic()
    records = {r["id"]: r for r in run_rows([{"id": r["id"], "text": r["text"] or ""} for r in rows],
                                            lambda texts: judge_many(texts, index=real_index))}
    seconds = time.monotonic() - started
    print(f"\nsingle process: {len(rows)} rows in {seconds:.1f}s, {len(rows) / seconds:.1f} rows/s")
    return records


@pytest.fixture(scope="module")
def on_ray(rows, real_home, local_ray, tmp_path_factory):
    """The same rows ruled on Ray, two actors, written as Parquet."""
    work = tmp_path_factory.mktemp("ray")
    pq.write_table(pa.Table.from_pylist(rows, schema=pa.schema([("id", pa.string()), ("text", pa.string())])),
                   work / "messages.parquet")
    seen: list[tuple[int, int]] = []
    summary = judge_with_ray(work / "messages.parquet", work / "rulings", settings=load_settings(home=real_home),
                             progress=lambda done, total: seen.append((done, total)))
    print(f"\nRay, 2 actors: {summary.ruled} rows in {summary.seconds:.1f}s (reading, start-up and index load included), "
          f"{summary.ruled / summary.seconds:.1f} rows/s")
    return work, summary, seen


# The first test's setup builds the session's real index (about 5 minutes on two cores) and rules
# 10,000 messages twice, on Ray and in this process.
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_rulings_on_ray_are_the_single_process_rulings(on_ray, single_process, real_home):
    work, summary, seen = on_ray
    assert (summary.ruled, summary.skipped, summary.fmt) == (MESSAGES, 0, "parquet")
    assert seen[-1] == (MESSAGES, MESSAGES) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    records = output_records(work / "rulings")
    assert len(records) == MESSAGES and {r["id"] for r in records} == set(single_process)
    assert summary.errors == sum("error" in r for r in records) == 8  # empty, blank, missing and too long
    verdicts = {r.get("verdict") for r in records}
    assert {"violation", "no_violation", "needs_review"} <= verdicts
    zh_violations = [r for r in records if r.get("verdict") == "violation" and "代开发票" in r["message"]]
    assert zh_violations and all(v["quote"] in v["text"] for r in zh_violations for v in r["violations"])
    # The whole ruling, id by id: verdict, violations with quotes and spans, penalties, confidence.
    different = [r["id"] for r in records if r != single_process[r["id"]]]
    assert not different, f"{len(different)} rulings differ, e.g. {different[:5]}"
    audited = [r for r in open_store(load_settings(home=real_home)).audit() if r.batch_id and r.batch_id.endswith("-messages.parquet")]
    assert {r.row_id for r in audited} == {r["id"] for r in records if "error" not in r}  # each ruling in the audit trail


@pytest.mark.slow
def test_a_rerun_rules_only_the_missing_ids(on_ray, real_home, tmp_path):
    work, first, _ = on_ray
    out = tmp_path / "rulings"
    shutil.copytree(work / "rulings", out)
    files = sorted(out.glob("*.parquet"))
    lost = {i for f in files[:2] for i in pq.read_table(f, columns=["id"])["id"].to_pylist()}
    for f in files[:2]:
        f.unlink()
    cut = files[2]  # a write cut off by a kill: set aside, its rows ruled again
    lost |= set(pq.read_table(cut, columns=["id"])["id"].to_pylist())
    cut.write_bytes(cut.read_bytes()[:1000])

    summary = judge_with_ray(work / "messages.parquet", out, settings=load_settings(home=real_home))
    assert summary.ruled == len(lost) and summary.skipped == MESSAGES - len(lost)
    assert (out / (cut.name + ".incomplete")).exists()
    ids = [r["id"] for r in output_records(out)]
    assert len(ids) == len(set(ids)) == MESSAGES

    again = judge_with_ray(work / "messages.parquet", out, settings=load_settings(home=real_home))
    assert (again.ruled, again.skipped) == (0, MESSAGES)


@pytest.mark.slow
def test_cli_runs_a_jsonl_batch_on_ray_and_resumes(rows, single_process, real_home, local_ray, tmp_path, monkeypatch):
    monkeypatch.setenv("POLICYQA_HOME", str(real_home))
    half, full = tmp_path / "half.jsonl", tmp_path / "all.jsonl"
    sample = rows[:320]
    for path, part in ((half, sample[:128]), (full, sample)):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part), encoding="utf-8")
    runner = CliRunner()
    first = runner.invoke(app, ["judge", "--file", str(half), "--out", str(tmp_path / "out"), "--ray"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, ["judge", "--file", str(full), "--out", str(tmp_path / "out"), "--ray"])
    assert second.exit_code == 0, second.output
    assert "Ruled 192 rows" in second.output and "128 already done were skipped" in second.output
    lines = [line for f in sorted((tmp_path / "out").glob("*.jsonl")) for line in f.read_text(encoding="utf-8").splitlines()]
    # The lines the single-process batch writes, but for each ruling's own audit stamp.
    assert sorted(json.dumps(unstamped(json.loads(line)), ensure_ascii=False) for line in lines) == sorted(
        json.dumps(single_process[r["id"]], ensure_ascii=False) for r in sample)


@pytest.mark.slow  # starts Ray; needs no index: nothing is ruled
def test_bad_input_is_refused_before_any_actor_starts(local_ray, tmp_path):
    settings = load_settings()
    (tmp_path / "rows.csv").write_text("id,text\na,hello\n")
    with pytest.raises(InvalidInputError, match=r"\.parquet or \.jsonl"):
        judge_with_ray(tmp_path / "rows.csv", tmp_path / "out", settings=settings)
    pq.write_table(pa.table({"id": ["a"], "body": ["hello"]}), tmp_path / "no-text.parquet")
    with pytest.raises(InvalidInputError, match="'text'"):
        judge_with_ray(tmp_path / "no-text.parquet", tmp_path / "out", settings=settings)
    pq.write_table(pa.table({"id": ["a", "a"], "text": ["hello", "there"]}), tmp_path / "twice.parquet")
    with pytest.raises(InvalidInputError, match="more than once"):
        judge_with_ray(tmp_path / "twice.parquet", tmp_path / "out", settings=settings)


def test_without_ray_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'policyqa\[ray\]'"):
        judge_with_ray(tmp_path / "messages.parquet", tmp_path / "out")
    (tmp_path / "messages.jsonl").write_text('{"id": "a", "text": "hello"}\n')
    result = CliRunner().invoke(app, ["judge", "--file", str(tmp_path / "messages.jsonl"), "--out", str(tmp_path / "out"), "--ray"])
    assert result.exit_code != 0 and "pip install 'policyqa[ray]'" in result.output
