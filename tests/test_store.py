"""The store: audit trail and decisions, on SQLite (threads, two processes, kill -9) and Postgres."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from policyqa import (Answer, Citation, Clause, InvalidInputError, RecordNotFoundError, Ruling, Store, Violation,
                      feedback_items, load_dataset, run_rows, write_audit)
from policyqa._store import AuditStamp, sha256_of

STAMP = AuditStamp(index_fingerprint="f" * 16, model="test-model")
CLAUSE = Clause(clause_id="doc/1", document_id="doc", document_title="Doc", heading_path=("I. Rules",),
                text="1 Selling counterfeit identity cards is prohibited.", start=0, end=50, stance="prohibits")
OTHER = Clause(clause_id="doc/2", document_id="doc", document_title="Doc", heading_path=("I. Rules",),
               text="2 Gambling is prohibited.", start=51, end=80, stance="prohibits")


def ruling(message: str, verdict: str = "needs_review", cite: bool = False) -> Ruling:
    violations = [Violation(**Citation.of(CLAUSE, quote="counterfeit identity cards", score=0.8).model_dump(),
                            message_span=message, reason="r")] if cite else []
    return Ruling(message=message, verdict=verdict, violations=violations, confidence=0.5, engine="offline")


def store_at(tmp_path: Path, **kwargs) -> Store:
    return Store(f"sqlite:///{tmp_path / 'store.db'}", **kwargs)


def test_a_new_database_is_migrated_to_the_newest_schema(tmp_path):
    store = store_at(tmp_path)
    assert store.schema_version() == "0001"
    tables = set(inspect(create_engine(store.url)).get_table_names())
    assert {"records", "decisions", "alembic_version"} <= tables
    assert store_at(tmp_path).schema_version() == "0001"  # a second open does not migrate again
    with create_engine(store.url).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_the_schema_revision_constant_names_the_newest_migration():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from policyqa._store import MIGRATIONS, SCHEMA_REVISION

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [SCHEMA_REVISION]


def test_queue_lists_undecided_needs_review_oldest_first_and_a_decision_resolves(tmp_path):
    store = store_at(tmp_path)
    first, second = store.record("judge", [ruling("one"), ruling("two")], stamp=STAMP, source="batch",
                                 batch_id="b1", row_ids=["r1", "r2"])
    store.record("judge", [ruling("fine", "no_violation")], stamp=STAMP, source="app")
    third, = store.record("judge", [ruling("three")], stamp=STAMP, source="app", product="wecom")
    assert [r.record_id for r in store.queue()] == [first, second, third]
    assert [r.record_id for r in store.queue(source="app")] == [third]
    assert [r.record_id for r in store.queue(product="wecom")] == [third]
    assert [r.row_id for r in store.queue(batch_id="b1")] == ["r1", "r2"]
    assert [r.input_text for r in store.queue(contains="tw")] == ["two"]
    assert [r.input_text for r in store.queue(contains="%")] == []  # LIKE wildcards are escaped
    store.decide(first, reviewer="ann", verdict="no_violation", note="a joke")
    assert [r.record_id for r in store.queue()] == [second, third] and store.queue_size() == 2
    later = store.decide(first, reviewer="bo", verdict="violation", clause_ids=["doc/1"])
    assert store.get(first).decision == later  # the latest decision counts


def test_a_decision_is_checked_against_the_record(tmp_path):
    store = store_at(tmp_path)
    record_id, = store.record("judge", [ruling("x")], stamp=STAMP, source="cli")
    asked, = store.record("ask", [Answer(question="q?", verdict="allowed", summary="s", confidence=0.9, engine="offline")],
                          stamp=STAMP, source="cli")
    with pytest.raises(InvalidInputError, match="needs_review"):
        store.decide(record_id, reviewer="ann", verdict="needs_review")
    with pytest.raises(InvalidInputError, match="names the clause"):
        store.decide(record_id, reviewer="ann", verdict="violation")
    with pytest.raises(InvalidInputError, match="unknown clause"):
        store.decide(record_id, reviewer="ann", verdict="violation", clause_ids=["doc/9"], known_clause_ids={"doc/1"})
    with pytest.raises(InvalidInputError, match="not one of"):
        store.decide(asked, reviewer="ann", verdict="violation", clause_ids=["doc/1"])
    with pytest.raises(InvalidInputError, match="reviewer"):
        store.decide(record_id, reviewer=" ", verdict="no_violation")
    with pytest.raises(RecordNotFoundError):
        store.decide("0" * 32, reviewer="ann", verdict="no_violation")
    agreed = store.decide(asked, reviewer="ann", agree=True)
    assert agreed.verdict == "allowed" and agreed.agreed


def test_audit_export_writes_every_record_with_its_decision_as_jsonl_and_csv(tmp_path):
    store = store_at(tmp_path)
    cited, plain = store.record("judge", [ruling("fake ID cards", "violation", cite=True), ruling("héllo 你好")],
                                stamp=STAMP, source="api", row_ids=["a", "b"])
    store.decide(cited, reviewer="ann", agree=True, note="right")
    buffer = io.StringIO()
    assert write_audit(store, buffer, "jsonl") == 2
    rows = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert rows[0]["clause_ids"] == ["doc/1"] and rows[0]["decision_verdict"] == "violation"
    assert rows[0]["reviewer"] == "ann" and rows[0]["decision_note"] == "right" and rows[1]["reviewer"] is None
    assert rows[1]["input_sha256"] == sha256_of("héllo 你好") and rows[1]["input_text"] == "héllo 你好"
    assert rows[0]["index_fingerprint"] == STAMP.index_fingerprint and rows[0]["model"] == "test-model"
    buffer = io.StringIO()
    write_audit(store, buffer, "csv")
    table = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert [r["record_id"] for r in table] == [cited, plain] and json.loads(table[0]["decision_clause_ids"]) == ["doc/1"]


def test_without_keeping_text_only_the_digest_is_stored(tmp_path):
    store = store_at(tmp_path, keep_text=False)
    record_id, = store.record("judge", [ruling("my secret message")], stamp=STAMP, source="app")
    assert store.get(record_id).input_text is None and store.result_of(record_id) is None
    assert store.get(record_id).input_sha256 == sha256_of("my secret message")
    raw = (tmp_path / "store.db").read_bytes() + (tmp_path / "store.db-wal").read_bytes()
    assert b"my secret message" not in raw
    store.decide(record_id, reviewer="ann", verdict="no_violation")
    items, skipped = feedback_items(store, {CLAUSE.clause_id: CLAUSE})
    assert items == [] and "not kept" in skipped[0]


def test_feedback_becomes_a_dataset_that_loads_with_verbatim_gold_quotes(tmp_path):
    store = store_at(tmp_path)
    cited, other, chinese = store.record(
        "judge", [ruling("fake ID cards here", "violation", cite=True), ruling("dice game, bets welcome"), ruling("你好朋友")],
        stamp=STAMP, source="app", product="weixin")
    store.decide(cited, reviewer="ann", agree=True)
    store.decide(other, reviewer="ann", verdict="violation", clause_ids=["doc/2"], note="gambling")
    store.decide(chinese, reviewer="ann", verdict="no_violation")
    items, skipped = feedback_items(store, {c.clause_id: c for c in (CLAUSE, OTHER)})
    assert skipped == [] and len(items) == 3
    assert items[0].gold[0].quote == "counterfeit identity cards"  # the span the ruling quoted
    assert items[1].gold[0].quote == OTHER.text and "gambling" in items[1].note  # not cited: the whole clause
    assert items[2].lang == "zh" and items[2].expected_verdict == "no_violation" and items[2].product == "weixin"
    path = tmp_path / "reviewed.jsonl"
    path.write_text("".join(i.model_dump_json(exclude_none=True) + "\n" for i in items), encoding="utf-8")
    assert [i.id for i in load_dataset([path])] == [i.id for i in items]


def test_run_rows_logs_each_chunk_before_yielding_it(tmp_path):
    from policyqa import audit_recorder

    class FakeIndex:
        fingerprint = {"model": "m"}
        manifest = {"built_at": "now"}

    store = store_at(tmp_path)
    record = audit_recorder(store, "judge", FakeIndex(), source="batch", batch_id="b")
    rows = [{"id": str(n), "text": f"message {n}"} for n in range(130)] + [{"id": "bad", "error": "not JSON"}]
    lines = []
    for line in run_rows(rows, lambda texts: [ruling(t) for t in texts], record=record):
        if "record_id" in line:
            assert store.get(line["record_id"]).row_id == line["id"]  # in the store before it is written out
        lines.append(line)
    assert len({line["record_id"] for line in lines[:-1]}) == 130 and "record_id" not in lines[-1]
    assert lines[0]["model"] == "m" and lines[0]["recorded_at"]


def test_threads_write_concurrently_without_losing_a_row(tmp_path):
    store = store_at(tmp_path)
    ids: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(25):
            got = store.record("judge", [ruling(f"t{n}-{i}")], stamp=STAMP, source="api")
            if i % 5 == 0:
                store.decide(got[0], reviewer=f"r{n}", verdict="no_violation")
            with lock:
                ids.extend(got)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 200 and sum(1 for _ in store.audit()) == 200
    assert len(store.queue(limit=1000)) == 200 - 8 * 5


WRITER = textwrap.dedent("""
    import sys
    from policyqa import Ruling, Store
    from policyqa._store import AuditStamp
    store = Store(sys.argv[1])
    stamp = AuditStamp(index_fingerprint="p", model="m")
    for i in range(int(sys.argv[3])):
        ids = store.record("judge", [Ruling(message=f"{sys.argv[2]}-{i}", verdict="needs_review", confidence=0.5,
                                            engine="offline")], stamp=stamp, source="batch")
        print(ids[0], flush=True)  # acknowledged: committed before it is printed
""")


def _writer(url: str, name: str, count: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, url, name, str(count)], stdout=subprocess.PIPE, text=True)


def test_two_processes_write_concurrently_without_losing_a_row(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    processes = [_writer(url, name, 150) for name in ("a", "b")]
    printed = [p.communicate(timeout=300)[0].split() for p in processes]
    assert all(p.returncode == 0 for p in processes)
    stored = {r.record_id for r in Store(url).audit()}
    assert len(stored) == 300 and stored == set(printed[0]) | set(printed[1])


def test_kill_9_during_writes_loses_nothing_acknowledged(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"
    process = _writer(url, "k", 100_000)
    acknowledged = [process.stdout.readline().strip() for _ in range(200)]
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    acknowledged += [line.strip() for line in process.stdout.read().splitlines() if line.strip()]
    store = Store(url)
    stored = {r.record_id for r in store.audit()}
    assert set(acknowledged) <= stored
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    store.record("judge", [ruling("after the kill")], stamp=STAMP, source="app")  # still writable


# --- Postgres (Debian's postgresql package), a real server on a loopback port ----------------------

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None) if Path(
    "/usr/lib/postgresql").is_dir() else None


@pytest.fixture(scope="module")
def postgres_url():
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        pytest.skip("Debian's postgresql package is not installed (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'psycopg[binary]')")
    import tempfile

    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="policyqa-pg-"))  # not under pytest's root-only tmp: postgres must reach it
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start postgres as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
        os.chmod(folder, 0o755)
    data = folder / "data"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    made = subprocess.run([*as_user, str(PG_BIN / "initdb"), "-D", str(data), "-U", "policyqa", "--auth=trust",
                           "-E", "UTF8"], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"initdb failed: {made.stderr[-1000:]}")
    server = subprocess.Popen([*as_user, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port),
                               "-h", "127.0.0.1", "-k", str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"postgresql+psycopg://policyqa@127.0.0.1:{port}/postgres"
    deadline = time.time() + 60
    while True:
        try:
            with create_engine(url).connect() as connection:
                connection.execute(text("select 1"))
            break
        except Exception:  # noqa: BLE001 - not up yet
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("postgres did not start")
            time.sleep(0.3)
    yield url
    server.terminate()
    server.wait(timeout=30)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.postgres
def test_the_store_works_on_postgres(postgres_url):
    store = Store(postgres_url)
    assert store.schema_version() == "0001"
    first, second = store.record("judge", [ruling("uno"), ruling("dos", "violation", cite=True)], stamp=STAMP, source="api")
    store.decide(second, reviewer="ann", agree=True)
    assert [r.record_id for r in store.queue()] == [first]
    assert store.get(second).decision.clause_ids == ["doc/1"]
    processes = [_writer(postgres_url, name, 40) for name in ("a", "b")]
    assert all(p.wait(timeout=300) == 0 for p in processes)
    assert sum(1 for _ in store.audit()) == 82
