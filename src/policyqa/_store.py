"""The store: every answer and ruling made (the audit trail) and every reviewer decision on one.

SQLite under POLICYQA_HOME by default, any SQLAlchemy URL (`postgresql+psycopg://...`) for a team.
Both tables are append-only: a second decision on a ruling is a new row, and the latest one counts.
The schema is created and upgraded by Alembic migrations (`_migrations/`) on first use.

Why each SQLite setting: WAL lets the app read the queue while a batch writes; `synchronous=FULL`
makes an acknowledged commit survive a killed process (and a power cut); every transaction begins
IMMEDIATE, so two writers queue on `busy_timeout` instead of failing with "database is locked"
when a read lock cannot be upgraded.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (Boolean, Column, DateTime, Float, ForeignKey, Integer, MetaData, String, Table, Text,
                        create_engine, event, func, insert, inspect, select)
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from ._config import Settings
from ._errors import InvalidInputError, RecordNotFoundError, StoreError
from ._models import Answer, Clause, EvalItem, Ruling

MIGRATIONS = Path(__file__).parent / "_migrations"
SCHEMA_REVISION = "0001"
"""The newest migration. A database already at it is used without importing Alembic and running its
check on every CLI call; tests/test_store.py checks this names the migrations' head."""
BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for another's transaction (a 64-row batch chunk commits in milliseconds)."""

metadata = MetaData()

records = Table(
    "records", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(32), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("kind", String(8), nullable=False),  # "ask" or "judge"
    Column("source", String(16), nullable=False),  # app, cli, api, batch
    Column("batch_id", String(64), index=True),
    Column("row_id", String(256)),
    Column("input_sha256", String(64), nullable=False, index=True),
    Column("input_text", Text),  # only when the audit_keeps_text setting allows it
    Column("product", String(32)),
    Column("surface", String(32)),
    Column("verdict", String(16), nullable=False, index=True),
    Column("confidence", Float, nullable=False),
    Column("clause_ids", Text, nullable=False),  # JSON list, in citation order
    Column("engine", String(300), nullable=False),
    Column("index_fingerprint", String(64), nullable=False),
    Column("model", String(300), nullable=False),
    Column("result_json", Text),  # the whole answer or ruling; only when the text is kept (it contains it)
)

decisions = Table(
    "decisions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("record_id", String(32), ForeignKey("records.record_id"), nullable=False, index=True),
    Column("decided_at", DateTime(timezone=True), nullable=False),
    Column("reviewer", String(120), nullable=False),
    Column("agreed", Boolean, nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("clause_ids", Text, nullable=False),
    Column("note", Text, nullable=False),
    Column("source", String(16), nullable=False),
)

Kind = Literal["ask", "judge"]
Source = Literal["app", "cli", "api", "batch"]
DECIDABLE = {"ask": ("prohibited", "allowed", "informational", "not_covered"), "judge": ("violation", "no_violation")}
"""What a reviewer may decide: a final verdict ("needs review" is what a decision resolves)."""
CITING = {"prohibited", "violation"}
"""Verdicts that must name the clause(s) deciding them: an eval item needs its gold citation."""


class AuditStamp(BaseModel):
    """Which index and model produced a result, as the audit trail keeps it: a digest of the index's
    fingerprint (the HTTP API's envelope carries the whole fingerprint instead) and the model."""

    model_config = ConfigDict(frozen=True)
    index_fingerprint: str = Field(description="A digest of the index's fingerprint (corpus, model, recipe).")
    model: str
    built_at: str | None = None

    @classmethod
    def of(cls, index) -> AuditStamp:
        fingerprint = index.fingerprint
        digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]
        return cls(index_fingerprint=digest, model=fingerprint.get("model", "?"), built_at=index.manifest.get("built_at"))


class Decision(BaseModel):
    """A reviewer's decision on one answer or ruling."""

    model_config = ConfigDict(frozen=True)
    record_id: str
    decided_at: datetime
    reviewer: str
    agreed: bool
    verdict: str
    clause_ids: list[str]
    note: str = ""
    source: str


class AuditRecord(BaseModel):
    """One row of the audit trail, with the latest decision on it when there is one."""

    model_config = ConfigDict(frozen=True)
    record_id: str
    created_at: datetime
    kind: Kind
    source: str
    batch_id: str | None = None
    row_id: str | None = None
    input_sha256: str
    input_text: str | None = None
    product: str | None = None
    surface: str | None = None
    verdict: str
    confidence: float
    clause_ids: list[str]
    engine: str
    index_fingerprint: str
    model: str
    decision: Decision | None = None

    def result(self, result_json: str | None) -> Answer | Ruling | None:
        if result_json is None:
            return None
        return (Answer if self.kind == "ask" else Ruling).model_validate_json(result_json)


def sha256_of(text: str) -> str:
    """The digest the audit trail keeps of an input (lone surrogates replaced, never an error)."""
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()


def cited_clause_ids(result: Answer | Ruling) -> list[str]:
    """The clauses an answer or ruling relies on, in citation order, each once."""
    cited = result.violations if isinstance(result, Ruling) else result.citations
    return list(dict.fromkeys(c.clause_id for c in cited))


def default_reviewer() -> str:
    """Who decides when nobody says: the user name of the process ("" when there is none)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        return ""


def default_url(settings: Settings) -> str:
    return settings.database_url or f"sqlite:///{settings.home / 'policyqa.db'}"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; every time stored is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Store:
    """The audit trail and the decisions, behind one SQLAlchemy engine (thread-safe; one per process)."""

    def __init__(self, url: str, *, keep_text: bool = True):
        self.url = url
        self.keep_text = keep_text
        try:
            if url.startswith("sqlite:///"):
                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError, ValueError, OSError) as exc:
            raise StoreError(f"Cannot open the store at {_redact(url)}: {exc}") from exc
        if self.engine.dialect.name == "sqlite":
            _sqlite_for_many_writers(self.engine)
        self._migrated = False
        self._lock = threading.Lock()

    # --- schema -------------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration (idempotent; safe in two processes)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except SQLAlchemyError as exc:
            raise StoreError(f"Cannot create or upgrade the store at {_redact(self.url)}: {exc}") from exc

    def _ready(self) -> Engine:
        with self._lock:
            if not self._migrated:
                if self._revision() != SCHEMA_REVISION:
                    self.migrate()
                self._migrated = True
        return self.engine

    def _revision(self) -> str | None:
        """The database's schema revision, or None when it has none yet (read without Alembic)."""
        try:
            with self.engine.connect() as connection:
                if not inspect(connection).has_table("alembic_version"):
                    return None
                return connection.execute(sql_text("SELECT version_num FROM alembic_version")).scalar()
        except SQLAlchemyError as exc:
            raise StoreError(f"Cannot open the store at {_redact(self.url)}: {exc}") from exc

    def schema_version(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self._ready().connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # --- writing ------------------------------------------------------------------------------------

    def record(self, kind: Kind, results: Sequence[Answer | Ruling], *, stamp: AuditStamp, source: Source,
               product: str | None = None, surface: str | None = None, batch_id: str | None = None,
               row_ids: Sequence[str | None] | None = None, at: datetime | None = None) -> list[str]:
        """Append one audit row per result, in one transaction; returns their record ids."""
        if row_ids is not None and len(row_ids) != len(results):
            raise ValueError("row_ids must pair with results")
        now = at or _now()
        rows = []
        for n, result in enumerate(results):
            text = result.question if isinstance(result, Answer) else result.message
            rows.append({
                "record_id": uuid.uuid4().hex, "created_at": now, "kind": kind, "source": source,
                "batch_id": batch_id, "row_id": None if row_ids is None or row_ids[n] is None else str(row_ids[n])[:256],
                "input_sha256": sha256_of(text), "input_text": text if self.keep_text else None,
                "product": product, "surface": surface, "verdict": result.verdict,
                "confidence": float(result.confidence), "clause_ids": json.dumps(cited_clause_ids(result)),
                "engine": result.engine[:300], "index_fingerprint": stamp.index_fingerprint, "model": stamp.model[:300],
                "result_json": result.model_dump_json() if self.keep_text else None,
            })
        if rows:
            self._write(insert(records), rows)
        return [row["record_id"] for row in rows]

    def decide(self, record_id: str, *, reviewer: str, verdict: str | None = None, agree: bool = False,
               clause_ids: Sequence[str] = (), note: str = "", source: Source = "app",
               known_clause_ids: set[str] | None = None) -> Decision:
        """Record a reviewer's decision: agree with the result, or give the right verdict, the clauses
        that decide it and a note. A later decision on the same record supersedes this one.

        Raises:
            RecordNotFoundError: no such record.
            InvalidInputError: the verdict does not fit the record, or a clause id is unknown.
        """
        record = self.get(record_id)
        if not reviewer.strip():
            raise InvalidInputError("a decision needs the reviewer's name")
        if agree:
            if verdict not in (None, record.verdict):
                raise InvalidInputError("agree or give a verdict, not both")
            verdict = record.verdict
            clause_ids = list(clause_ids) or record.clause_ids
        if verdict not in DECIDABLE[record.kind]:
            hint = " ('needs_review' is what a decision resolves: choose the verdict)" if verdict == "needs_review" else ""
            raise InvalidInputError(f"verdict {verdict!r} is not one of {', '.join(DECIDABLE[record.kind])}{hint}")
        clause_ids = list(dict.fromkeys(c.strip() for c in clause_ids if c.strip()))
        if known_clause_ids is not None and (unknown := [c for c in clause_ids if c not in known_clause_ids]):
            raise InvalidInputError(f"unknown clause id(s): {', '.join(unknown)}")
        if verdict in CITING and not clause_ids:
            raise InvalidInputError(f"a {verdict} decision names the clause(s) that decide it")
        decision = Decision(record_id=record_id, decided_at=_now(), reviewer=reviewer.strip()[:120], agreed=agree,
                            verdict=verdict, clause_ids=clause_ids, note=note, source=source)
        self._write(insert(decisions), [{**decision.model_dump(), "clause_ids": json.dumps(clause_ids)}])
        return decision

    def _write(self, statement, rows: list[dict]) -> None:
        try:
            with self._ready().begin() as connection:
                connection.execute(statement, rows)
        except SQLAlchemyError as exc:
            raise StoreError(f"Could not write to the store at {_redact(self.url)}: {exc}") from exc

    # --- reading ------------------------------------------------------------------------------------

    def get(self, record_id: str) -> AuditRecord:
        found = list(self._select(records.c.record_id == record_id))
        if not found:
            raise RecordNotFoundError(f"no ruling or answer with record id {record_id!r} in the store")
        return found[0][0]

    def result_of(self, record_id: str) -> Answer | Ruling | None:
        """The whole answer or ruling, when the text was kept."""
        for record, result_json in self._select(records.c.record_id == record_id):
            return record.result(result_json)
        raise RecordNotFoundError(f"no ruling or answer with record id {record_id!r} in the store")

    def queue(self, *, source: str | None = None, product: str | None = None, batch_id: str | None = None,
              contains: str | None = None, limit: int = 200) -> list[AuditRecord]:
        """Rulings that need review and have no decision yet, oldest first."""
        conditions = _waiting(source=source, product=product, batch_id=batch_id, contains=contains)
        return [record for record, _ in self._select(*conditions, limit=limit)]

    def queue_size(self, *, source: str | None = None, product: str | None = None, batch_id: str | None = None,
                   contains: str | None = None) -> int:
        """How many rulings queue() would list with these filters and no limit."""
        conditions = _waiting(source=source, product=product, batch_id=batch_id, contains=contains)
        with self._ready().connect() as connection:
            return int(connection.execute(select(func.count()).select_from(records).where(*conditions)).scalar_one())

    def history(self, kind: Kind, *, source: str | None = None, limit: int = 50) -> list[tuple[AuditRecord, Answer | Ruling]]:
        """The newest results of a kind that kept their text, oldest of them first (the Ask page's history)."""
        conditions = [records.c.kind == kind, records.c.result_json.is_not(None)]
        if source:
            conditions.append(records.c.source == source)
        newest = select(records.c.id).where(*conditions).order_by(records.c.id.desc()).limit(limit)
        return [(record, record.result(result_json)) for record, result_json in self._select(records.c.id.in_(newest))]

    def audit(self, *, since: datetime | None = None) -> Iterator[AuditRecord]:
        """Every record, oldest first, with its latest decision."""
        conditions = [records.c.created_at >= since] if since else []
        yield from (record for record, _ in self._select(*conditions))

    def decided(self) -> Iterator[tuple[AuditRecord, Answer | Ruling | None]]:
        """Records with a decision, oldest first, with their whole result when the text was kept."""
        yield from ((record, record.result(result_json)) for record, result_json
                    in self._select(records.c.record_id.in_(select(decisions.c.record_id))))

    def _select(self, *conditions, limit: int | None = None) -> Iterator[tuple[AuditRecord, str | None]]:
        query = select(records).where(*conditions).order_by(records.c.id)
        if limit:
            query = query.limit(limit)
        try:
            with self._ready().connect() as connection:
                rows = list(connection.execute(query).mappings())
                latest = _latest_decisions(connection, [row["record_id"] for row in rows])
        except SQLAlchemyError as exc:
            raise StoreError(f"Could not read the store at {_redact(self.url)}: {exc}") from exc
        for row in rows:
            fields = {k: v for k, v in row.items() if k not in {"id", "result_json"}}
            fields["created_at"] = _aware(fields["created_at"])
            fields["clause_ids"] = json.loads(fields["clause_ids"])
            yield AuditRecord(**fields, decision=latest.get(row["record_id"])), row["result_json"]


def _waiting(*, source: str | None, product: str | None, batch_id: str | None, contains: str | None) -> list:
    """The conditions of the review queue: needs review, no decision, and the filters given."""
    conditions = [records.c.verdict == "needs_review", records.c.record_id.not_in(select(decisions.c.record_id))]
    if source:
        conditions.append(records.c.source == source)
    if product:
        conditions.append(records.c.product == product)
    if batch_id:
        conditions.append(records.c.batch_id == batch_id)
    if contains:
        conditions.append(records.c.input_text.contains(contains, autoescape=True))
    return conditions


def _latest_decisions(connection, record_ids: list[str]) -> dict[str, Decision]:
    latest: dict[str, Decision] = {}
    for start in range(0, len(record_ids), 500):  # SQLite's bound-parameter limit
        chunk = record_ids[start:start + 500]
        query = select(decisions).where(decisions.c.record_id.in_(chunk)).order_by(decisions.c.id)
        for row in connection.execute(query).mappings():
            fields = {k: v for k, v in row.items() if k != "id"}
            latest[row["record_id"]] = Decision(**{**fields, "decided_at": _aware(fields["decided_at"]),
                                                   "clause_ids": json.loads(fields["clause_ids"])})
    return latest


def _sqlite_for_many_writers(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _switch_to_wal(cursor) -> None:
    """PRAGMA journal_mode = WAL, retried while another process holds the new file's lock: the switch
    can fail at once with "database is locked" instead of waiting on busy_timeout (two processes
    creating the same store; seen once in tests/test_store.py's two-writer test). The mode persists
    in the file, so only the first connections race."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given: it holds no parsable password
        return url


_STORES: dict[tuple[str, bool], Store] = {}
_STORES_LOCK = threading.Lock()


def open_store(settings: Settings) -> Store:
    """The store the settings name (one per URL per process; its schema is migrated on first use).

    Raises:
        StoreError: the database cannot be opened.
    """
    key = (default_url(settings), settings.audit_keeps_text)
    with _STORES_LOCK:
        if key not in _STORES:
            _STORES[key] = Store(key[0], keep_text=key[1])
        return _STORES[key]


def audit_recorder(store: Store, kind: Kind, index, *, source: Source, product: str | None = None,
                   surface: str | None = None, batch_id: str | None = None):
    """A function that logs results (with their row ids, None for a single one) and returns the fields
    each result's JSON carries from then on: record id, time, index fingerprint and model. The batch
    path hands it to run_rows; a single ruling calls it with one result."""
    stamp = AuditStamp.of(index)

    def record(results: Sequence[Answer | Ruling], row_ids: Sequence[str | None]) -> list[dict[str, Any]]:
        at = _now()
        ids = store.record(kind, results, stamp=stamp, source=source, product=product, surface=surface,
                           batch_id=batch_id, row_ids=row_ids, at=at)
        return [{"record_id": record_id, "recorded_at": at.isoformat(), "index_fingerprint": stamp.index_fingerprint,
                 "model": stamp.model} for record_id in ids]

    return record


def new_batch_id(name: str) -> str:
    """A batch's id in the audit trail: its file name and when it started."""
    return f"{_now():%Y%m%dT%H%M%S}-{Path(name).name}"[:64]


# --- exports ----------------------------------------------------------------------------------------

AUDIT_FIELDS = ("record_id", "created_at", "kind", "source", "batch_id", "row_id", "input_sha256", "input_text",
                "product", "surface", "verdict", "confidence", "clause_ids", "engine", "index_fingerprint", "model",
                "decision_at", "reviewer", "decision_agreed", "decision_verdict", "decision_clause_ids", "decision_note")


def audit_row(record: AuditRecord) -> dict[str, Any]:
    """A flat audit row (the decision's fields prefixed), as JSONL and CSV exports write it."""
    decision = record.decision
    return {
        **record.model_dump(mode="json", exclude={"decision"}),
        "decision_at": decision.decided_at.isoformat() if decision else None,
        "reviewer": decision.reviewer if decision else None,
        "decision_agreed": decision.agreed if decision else None,
        "decision_verdict": decision.verdict if decision else None,
        "decision_clause_ids": decision.clause_ids if decision else None,
        "decision_note": decision.note if decision else None,
    }


def write_audit(store: Store, target: io.TextIOBase, fmt: Literal["jsonl", "csv"], *, since: datetime | None = None) -> int:
    """Write the audit trail as JSONL or CSV (lists as JSON in a CSV cell); returns the row count."""
    count = 0
    writer = csv.DictWriter(target, fieldnames=AUDIT_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    for record in store.audit(since=since):
        row = audit_row(record)
        if writer:
            writer.writerow({k: json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v for k, v in row.items()})
        else:
            target.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count


def feedback_items(store: Store, clauses: dict[str, Clause]) -> tuple[list[EvalItem], list[str]]:
    """Reviewed records as gold evaluation items (evals/README.md's format), and why others were skipped.

    A gold citation quotes its clause verbatim: the span the result cited from it when it cited it,
    else the clause's whole text, so `policyqa eval` checks the reviewer's clauses, not the tool's."""
    from ._chinese import language_of

    items: list[EvalItem] = []
    skipped: list[str] = []
    for record, result in store.decided():
        decision = record.decision
        if record.input_text is None:
            skipped.append(f"{record.record_id}: its text was not kept (audit_keeps_text is off)")
            continue
        unknown = [c for c in decision.clause_ids if c not in clauses]
        if unknown:
            skipped.append(f"{record.record_id}: clause(s) {', '.join(unknown)} are not in this index")
            continue
        quotes = {}
        if result is not None:
            cited = result.violations if isinstance(result, Ruling) else result.citations
            quotes = {c.clause_id: c.quote for c in cited}
        gold = [{"clause": c, "quote": _gold_quote(quotes.get(c), clauses[c])} for c in decision.clause_ids]
        lang = "zh" if language_of(record.input_text) == "zh" else "en"
        note = f"reviewed by {decision.reviewer} on {decision.decided_at:%Y-%m-%d}" + (f": {decision.note}" if decision.note else "")
        items.append(EvalItem(id=f"reviewed-{record.record_id}", kind="question" if record.kind == "ask" else "message",
                              text=record.input_text, expected_verdict=decision.verdict, gold=gold, note=note,
                              lang=lang, product=record.product))
    return items, skipped


def _gold_quote(cited: str | None, clause: Clause) -> str:
    """The span the result quoted from the clause when it is verbatim in it, else the clause's text."""
    return cited if cited and cited in clause.text else clause.text


def export_feedback(store: Store, clauses: dict[str, Clause], path: Path) -> tuple[int, list[str]]:
    """Write the reviewed items to `path` as an evaluation dataset (JSONL, written whole then
    renamed into place); returns how many, and why others were skipped."""
    items, skipped = feedback_items(store, clauses)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text("".join(item.model_dump_json(exclude_none=True) + "\n" for item in items), encoding="utf-8")
    partial.replace(path)
    return len(items), skipped
