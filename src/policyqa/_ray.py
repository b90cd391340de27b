"""Batch rulings on Ray Data, for batches bigger than one machine (the `ray` extra).

The contract is the single-process batch's (`policyqa judge --file ... --out ...`, `_batch.run_rows`):
every input row gets one output row, a ruling or an error, and a rerun rules only the ids the
output folder does not hold yet. What changes is where the work runs:

    read (Parquet or JSONL, `id` and `text`)   the ids first: refuse a missing or repeated id
      -> drop ids already in out_dir
      -> blocks of a few hundred rows           a block is one output file, and what a kill can cost
         (materialised: held in Ray's object store, which spills to disk, while they are ruled)
      -> rule with judge_many, in batches        an actor pool: each actor loads the index once
      -> write Parquet or JSONL into out_dir     one file per block, as blocks finish

Ray is imported inside the functions only: `import policyqa` never pays for it, and without the
extra the error says how to install it. The ids of the input and of the existing output are
collected on the driver (a few bytes each: fine for tens of millions of rows).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ._api import judge_many
from ._batch import run_rows
from ._store import audit_recorder, new_batch_id, open_store
from ._config import Settings, load_settings
from ._errors import ConfigError, InvalidInputError, PolicyQAError
from ._retrieval import open_index

OutputFormat = Literal["parquet", "jsonl"]
INPUT_SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl"}
OUTPUT_COLUMNS = ("id", "verdict", "error", "ruling")
"""A Parquet output row: `ruling` is the ruling's JSON (`Ruling.model_dump(mode="json")`), null on
an error row; `verdict` repeats the ruling's verdict so a filter need not parse it."""
INCOMPLETE = ".incomplete"
"""Suffix given to an output file that does not read back whole (a write cut off by a kill): its
rows are ruled again and the folder stays readable by any Parquet or JSONL reader."""
BLOCKS_PER_ACTOR = 8
"""Blocks (output files) each actor gets in a big job, so the actors finish close together; a
block holds one batch at least, so a small job has fewer."""
MAX_BATCHES_PER_BLOCK = 64
"""A block holds at most this many batches: a kill costs at most one block per actor."""
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class RayJobSummary:
    """What one run of judge_with_ray did."""

    ruled: int
    """Rows written by this run, error rows included."""
    skipped: int
    """Input rows whose id the output folder already held."""
    errors: int
    """Error rows among `ruled` (empty text, too long, ...)."""
    out_dir: Path
    fmt: OutputFormat
    seconds: float


def judge_with_ray(source: Path, out_dir: Path, *, address: str | None = None, product: str | None = None,
                   surface: str | None = None, settings: Settings | None = None, actors: int | None = None,
                   batch_size: int = 64, fmt: OutputFormat = "parquet",
                   progress: Callable[[int, int], None] | None = None) -> RayJobSummary:
    """Rule on every row of `source` on Ray, writing one row per input id into the folder `out_dir`.

    source: a .parquet or .jsonl file (or a folder of them) with `id` and `text` columns.
    address: None starts a local Ray (or uses the one this process already started); "auto" or
        "ray://host:10001" joins a running cluster, whose every node needs this package and the
        index at `settings.home` (the settings travel to the actors as they are).
    actors: rulers, each loading the index once on one CPU (default: every CPU of the cluster).
    progress: called with (rows written, rows to rule) as output files appear.

    A rerun skips the ids already written, so a killed job resumes; an error row counts as done, as
    in the single-process batch.

    Raises:
        ConfigError: Ray is not installed.
        InvalidInputError: the source is not .parquet/.jsonl, cannot be read, lacks a `text` or
            `id` column, or has a row without an id or an id twice; an unknown product or surface.
        IndexNotBuiltError, StaleIndexError, CorruptIndexError: an actor cannot load the index.
    """
    ray = _import_ray()
    started = time.monotonic()
    settings = settings or load_settings()
    source, out_dir = Path(source), Path(out_dir)
    kind, inputs = _input_files(source)
    if fmt not in ("parquet", "jsonl"):
        raise InvalidInputError(f"output format is parquet or jsonl, not {fmt!r}")
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, not {batch_size}")
    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInputError(f"--out {out_dir} must be a folder for a Ray job (it holds one file per block)")
    out_dir.mkdir(parents=True, exist_ok=True)
    done = _written_ids(out_dir)

    started_ray = _connect(ray, address)
    try:
        with _quiet_ray_data():
            dataset = _read(ray, kind, inputs, source)
            ids = _input_ids(dataset, source)
            todo, skipped = _pending_count(ids, done)
            if todo == 0:
                return RayJobSummary(0, skipped, 0, out_dir, fmt, time.monotonic() - started)
            actors = max(1, min(actors or _cluster_cpus(ray), -(-todo // batch_size)))
            per_block = batch_size * max(1, min(MAX_BATCHES_PER_BLOCK, todo // (actors * BLOCKS_PER_ACTOR * batch_size)))
            # The rows to rule are cut into blocks before any actor starts: actors holding every
            # CPU would starve Ray Data's listing and repartition tasks (ray-project/ray#44687).
            # Blocks of whole batches also hand the actors the batches a single-process run over
            # the same rows has (judge_many promises equal rulings across batchings only up to
            # rounding; tests/test_ray.py finds them identical).
            pending = (dataset
                       .map_batches(_pending, fn_kwargs={"done": ray.put(_done_array(done))},
                                    batch_format="pyarrow", batch_size=None)
                       .repartition(target_num_rows_per_block=per_block, strict=True)
                       .materialize())
            ruled = pending.map_batches(
                _Judge, fn_constructor_kwargs={"settings": settings, "product": product, "surface": surface,
                                               "batch_id": new_batch_id(source.name)},
                compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1, batch_size=batch_size,
                batch_format="pyarrow")
            before = set(_output_files(out_dir))
            with _watch(out_dir, before, todo, progress):
                try:
                    if fmt == "parquet":
                        ruled.write_parquet(str(out_dir), ray_remote_args={"num_cpus": 0})
                    else:
                        ruled.write_datasink(_jsonl_sink(str(out_dir)), ray_remote_args={"num_cpus": 0})
                except Exception as exc:  # noqa: BLE001 - Ray wraps what the actors raised; ours reach the user
                    _raise_ours(exc)
                    raise
        rows, errors = _count_rows(sorted(set(_output_files(out_dir)) - before))
        return RayJobSummary(rows, skipped, errors, out_dir, fmt, time.monotonic() - started)
    finally:
        if started_ray:
            ray.shutdown()


class _Judge:
    """One actor of the pool: loads the index once, then rules batch after batch.

    run_rows gives the single-process batch's records, so a row the engine refuses (empty, too
    long) becomes an error row and the rest of its batch is still ruled. Every ruling goes to the
    audit trail of the store the settings name (on a cluster of several machines, name a shared
    database with POLICYQA_DATABASE_URL: each node's default SQLite file would be its own)."""

    def __init__(self, settings: Settings, product: str | None, surface: str | None, batch_id: str | None = None):
        # A failure here is kept and raised on the first batch: Ray reports an error raised in a
        # constructor as a dead actor with the traceback as text, but passes on a task's exception,
        # which judge_with_ray turns back into the user's message (no index here, unknown product).
        self.failure: PolicyQAError | None = None
        try:
            self.index = open_index(settings, build="never")
            self.index.check_product(product, surface)
            self.record = audit_recorder(open_store(settings), "judge", self.index, source="batch", product=product,
                                         surface=surface, batch_id=batch_id)
        except PolicyQAError as exc:
            self.failure = exc
        self.decide = lambda texts: judge_many(texts, product=product, surface=surface, index=self.index,
                                               settings=settings)

    def __call__(self, batch):
        import pyarrow as pa

        if self.failure is not None:
            raise self.failure
        rows = [{"id": i, "text": t} for i, t in zip(batch["id"].to_pylist(), batch["text"].to_pylist())]
        columns: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}
        for record in run_rows(rows, self.decide, record=self.record):
            ruling = {k: v for k, v in record.items() if k != "id"} if "error" not in record else None
            columns["id"].append(record["id"])
            columns["verdict"].append(ruling["verdict"] if ruling else None)
            columns["error"].append(record.get("error"))
            columns["ruling"].append(json.dumps(ruling, ensure_ascii=False) if ruling else None)
        return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


def _pending(batch, done):
    """The rows whose id is not in the output yet, with `id` and `text` as strings (a null text is
    empty, as in read_rows, and becomes an error row). `done` is an ObjectRef of the ids written."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import ray

    ids = pc.cast(batch["id"], pa.string())
    table = pa.table({"id": ids, "text": pc.fill_null(pc.cast(batch["text"], pa.string()), "")})
    written = ray.get(done)
    return table.filter(pc.invert(pc.is_in(ids, value_set=written))) if len(written) else table


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ConfigError("Ray batches need Ray Data: pip install 'policyqa[ray]'") from exc
    return ray


def _connect(ray, address: str | None) -> bool:
    """Join or start Ray quietly (no dashboard, workers' logs stay in Ray's log folder); True when
    this call started it, so the caller shuts it down again."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address is None:
        ray.init(**options)  # Ray counts the CPUs itself, container quotas included (os.cpu_count() does not)
    else:
        options.pop("include_dashboard")  # the cluster's head decided that
        try:
            ray.init(address=address, **options)
        except ConnectionError as exc:
            raise ConfigError(f"cannot reach the Ray cluster at {address!r}: {exc}") from exc
    return True


def _cluster_cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """No progress bars, banners, notes or logged tracebacks from Ray Data: the caller has
    `progress`, and errors reach it as exceptions. Datasets copy the context when made, so it is
    restored afterwards."""
    from ray.data import DataContext

    context = DataContext.get_current()
    names = ("enable_progress_bars", "print_on_execution_start", "raise_original_map_exception")
    saved = {name: getattr(context, name) for name in names}
    # raise_original_map_exception: an actor's PolicyQAError reaches the driver as itself (as the
    # `cause` of a RayTaskError); by default Ray Data wraps it in a UserCodeException whose
    # __cause__ is lost on the way back, leaving only the traceback's text.
    for name, value in zip(names, (False, False, True)):
        setattr(context, name, value)
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # its errors reach the caller as exceptions
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        logger.setLevel(level)


def _input_files(source: Path) -> tuple[str, list[str]]:
    """The input's kind and files: a .parquet or .jsonl file, or a folder holding files of one kind."""
    if source.is_dir():
        kinds = {INPUT_SUFFIXES.get(p.suffix.lower()) for p in source.iterdir() if p.is_file()} - {None}
        if len(kinds) != 1:
            raise InvalidInputError(f"{source} must hold .parquet or .jsonl files (one kind)")
        kind = kinds.pop()
        return kind, sorted(str(p) for p in source.iterdir() if INPUT_SUFFIXES.get(p.suffix.lower()) == kind)
    if source.suffix.lower() not in INPUT_SUFFIXES:
        raise InvalidInputError(f"{source.name}: a Ray batch reads .parquet or .jsonl files")
    if not source.is_file():
        raise InvalidInputError(f"{source} is not a file")
    return INPUT_SUFFIXES[source.suffix.lower()], [str(source)]


def _read(ray, kind: str, files: list[str], source: Path):
    """The input as a Dataset of `id` and `text`. JSONL goes through pyarrow's reader (read_json
    without lines=True), which keeps an id such as "007" as written; with lines=True Ray Data uses
    pandas, which turns a column of such ids into the numbers 7, 10, ..."""
    try:
        dataset = ray.data.read_parquet(files) if kind == "parquet" else ray.data.read_json(files)
        names = dataset.schema().names
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise _unreadable(source, exc) from exc
    missing = [c for c in ("id", "text") if c not in names]
    if missing:
        why = "; a Ray batch resumes by id, so every row needs one" if "id" in missing else ""
        raise InvalidInputError(f"{source} needs {' and '.join(repr(c) for c in missing)} "
                                f"column{'s' if len(missing) > 1 else ''} (it has {', '.join(names)}){why}")
    return dataset.select_columns(["id", "text"])


def _unreadable(source: Path, exc: BaseException) -> InvalidInputError:
    # pyarrow's JSON reader refuses a line that is not an object, or an id column of numbers and
    # strings mixed; Ray Data then retries the file as one JSON document, whose error says less.
    hint = "" if source.suffix.lower() == ".parquet" else " (each line must be one JSON object, and ids all strings or all numbers)"
    return InvalidInputError(f"cannot read {source}: {_first_line(exc)}{hint}")


def _input_ids(dataset, source: Path):
    """Every input id, read once (which also proves the whole input parses) before any actor starts.

    Raises InvalidInputError for a row without an id or an id given twice: resuming is by id."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        chunks = [pc.cast(batch["id"], pa.string()) for batch in
                  dataset.select_columns(["id"]).iter_batches(batch_format="pyarrow", batch_size=None)]
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad input file
        raise _unreadable(source, exc) from exc
    ids = pa.chunked_array(chunks, pa.string()).combine_chunks() if chunks else pa.array([], pa.string())
    missing = len(ids) - pc.sum(pc.and_(pc.is_valid(ids), pc.not_equal(ids, ""))).as_py() if len(ids) else 0
    if missing:
        raise InvalidInputError(f"{source}: {missing} rows have no id; a Ray batch resumes by id, so every row needs one")
    counts = pc.value_counts(ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values").to_pylist()
    if repeated:
        raise InvalidInputError(f"{source}: {len(repeated)} ids appear more than once, e.g. {repeated[:3]}")
    return ids


def _pending_count(ids, done: set[str]) -> tuple[int, int]:
    """(rows still to rule, rows already in the output)."""
    import pyarrow.compute as pc

    skipped = pc.sum(pc.is_in(ids, value_set=_done_array(done))).as_py() or 0 if done else 0
    return len(ids) - skipped, skipped


def _done_array(done: set[str]):
    import pyarrow as pa

    return pa.array(sorted(done), pa.string())


def _output_files(out_dir: Path) -> list[Path]:
    return [p for p in out_dir.iterdir() if p.is_file() and p.suffix in (".parquet", ".jsonl")]


def _file_records(path: Path) -> list[tuple[str, str | None]]:
    """(id, error) of each row of an output file; raises ValueError if it does not read back whole."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, columns=["id", "error"])
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors for a cut-off file vary
            raise ValueError(str(exc)) from exc
        return list(zip(table["id"].to_pylist(), table["error"].to_pylist()))
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        raise ValueError("the last line is cut off")
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [(str(r["id"]), r.get("error")) for r in records]


def _written_ids(out_dir: Path) -> set[str]:
    """Ids already in the output folder. A file cut off by a kill is renamed *.incomplete: its rows
    are ruled again, and the folder stays readable by any reader."""
    done: set[str] = set()
    for path in _output_files(out_dir):
        try:
            done.update(i for i, _ in _file_records(path))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            path.rename(path.with_name(path.name + INCOMPLETE))
    return done


def _count_rows(paths: list[Path]) -> tuple[int, int]:
    """(rows, error rows) in these output files."""
    rows = errors = 0
    for path in paths:
        records = _file_records(path)
        rows += len(records)
        errors += sum(error is not None for _, error in records)
    return rows, errors


@contextmanager
def _watch(out_dir: Path, before: set[Path], total: int,
           progress: Callable[[int, int], None] | None) -> Iterator[None]:
    """Report (rows written, total) from the files the job adds to `out_dir`, once a second. A file
    is counted once, when it first reads back whole; the last report, after the job, is (total, total)."""
    if progress is None:
        yield
        return
    stop = threading.Event()
    counted: dict[Path, int] = {}

    def poll() -> None:
        while True:
            for path in set(_output_files(out_dir)) - before - set(counted):
                try:
                    counted[path] = len(_file_records(path))
                except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
                    pass  # still being written
            progress(min(sum(counted.values()), total), total)
            if stop.wait(POLL_SECONDS):
                return

    watcher = threading.Thread(target=poll, name="policyqa-ray-progress", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
    progress(total, total)


def _jsonl_sink(path: str):
    """A Ray datasink writing the single-process batch's JSONL: one object per row,
    {"id", **ruling} or {"id", "error"}, so the files concatenate to what `--out x.jsonl` writes."""
    from ray.data.datasource import BlockBasedFileDatasink

    class RulingLines(BlockBasedFileDatasink):
        def __init__(self, folder: str):
            super().__init__(folder, file_format="jsonl")

        def write_block_to_file(self, block, file) -> None:
            table = block.to_arrow()
            lines = []
            for row_id, error, ruling in zip(table["id"].to_pylist(), table["error"].to_pylist(),
                                             table["ruling"].to_pylist()):
                record = {"id": row_id, **json.loads(ruling)} if ruling is not None else {"id": row_id, "error": error}
                lines.append(json.dumps(record, ensure_ascii=False) + "\n")
            file.write("".join(lines).encode("utf-8"))

    return RulingLines(path)


def _raise_ours(exc: BaseException) -> None:
    """Re-raise the PolicyQAError behind a Ray error (an actor that could not load the index, an
    unknown product), so the user reads our message rather than Ray's traceback."""
    cause = _root_cause(exc)
    if isinstance(cause, PolicyQAError):
        # Ray Data appends its retry advice to the message ("\nFailed to apply UDF transform ...").
        cause.args = (str(cause).split("\nFailed to ", 1)[0],)
        raise cause from exc


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception a Ray error wraps (RayTaskError.cause, then __cause__)."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = getattr(exc, "cause", None) or exc.__cause__
        if not isinstance(inner, BaseException):
            break
        exc = inner
    return exc


def _first_line(exc: BaseException) -> str:
    """A reader's error in one line, not Ray's traceback."""
    cause = _root_cause(exc)
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]
