"""The `policyqa` command. It holds no retrieval logic: it calls the public API and turns
PolicyQAError into a readable message with a non-zero exit status."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from typer.core import TyperOption

from policyqa import (PolicyIndex, PolicyQAError, ask_many, audit_recorder, build_corpus, check_text, check_training_data,
                      default_reviewer, done_ids, evaluate, export_feedback, judge_many, judge_with_ray, load_dataset,
                      load_settings, new_batch_id, open_store, pending, read_rows, run_rows, write_audit)


def _flags_without_type(self: TyperOption, ctx) -> str | None:
    """Typer 0.29's help prints `--json <bool>` for an on/off flag, which reads as if it took a value."""
    return None if self.is_flag else _typed(self, ctx)


_typed = TyperOption.display_type_rich
TyperOption.display_type_rich = _flags_without_type

app = typer.Typer(
    help="Answer 'is this allowed?' from platform policies, citing the exact clause.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

_STAGE_LABELS = {"parse": "Parsing clauses", "embed": "Embedding clauses", "index": "Writing indexes",
                 "baseline": "Building the llama-index baseline", "items": "Evaluating items",
                 "metrics": "Computing metrics", "report": "Writing the report",
                 "tune": "Tuning the query encoder", "examples": "Embedding training examples",
                 "train": "Fitting the decision models"}


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr, fed by the library's progress(stage, done, total) callback."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(_STAGE_LABELS.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield report


@contextmanager
def _user_errors() -> Iterator[None]:
    """Every failure ends as one line on stderr and exit status 1, never a traceback (issue 13);
    typer's own exits and usage errors and Ctrl+C pass through as they are."""
    try:
        yield
    except PolicyQAError as exc:
        _fail(str(exc), exc)
    except (typer.Exit, typer.Abort, typer.exceptions.TyperException):  # usage errors are TyperExceptions
        raise
    except Exception as exc:
        # Read here, not from Settings: it must work when the settings themselves fail to load.
        if os.environ.get("POLICYQA_DEBUG") == "1":
            raise
        _fail(f"unexpected {type(exc).__name__}: {exc} (run with POLICYQA_DEBUG=1 for the traceback)", exc)


def _fail(message: str, cause: BaseException | None = None) -> NoReturn:
    """Print `message` as one 'Error:' line and exit 1."""
    one_line = " ".join(message.encode("utf-8", errors="replace").decode("utf-8").split())
    err.print(f"[bold red]Error:[/] {escape(one_line)}", highlight=False, soft_wrap=True)  # "policyqa[ray]" is not markup
    raise typer.Exit(code=1) from cause


def _read_text_argument(text: str) -> str | bytes:
    """'-' reads the text from standard input (as bytes, so binary junk is reported, not crashed on)."""
    return sys.stdin.buffer.read() if text == "-" else text


def _open_index() -> PolicyIndex:
    """The loaded index: a progress bar while one is built, else a spinner saying what loads
    (a cold start spends seconds importing and loading the model; with nothing on screen it looks hung)."""
    settings = load_settings()
    index = PolicyIndex(settings)
    if not settings.index_dir.exists():
        err.print(f"No index at {settings.index_dir}; building it now.")
        with _progress_bar() as report:
            index.build(progress=report)
    with err.status(f"Loading the index ({settings.index_dir}) and the embedding model…", spinner="dots"):
        return index.load(build="never")


@app.command()
def corpus() -> None:
    """Rebuild the cleaned policy documents in corpus/ from corpus/sources/.

    Example: policyqa corpus
    """
    with _user_errors():
        settings = load_settings()
        for doc in build_corpus(settings.corpus_dir):
            out.print(f"{doc.document_id:38} {doc.corpus_file}  (from {doc.source_file})")


@app.command()
def index() -> None:
    """Build (or rebuild) the clause index: embeddings in FAISS plus a BM25 index.

    Example: policyqa index
    """
    with _user_errors():
        policy_index = PolicyIndex(load_settings())
        with _progress_bar() as report:
            info = policy_index.build(progress=report)
        out.print(f"Indexed {info.clause_count} clauses as {info.vector_count} vectors in "
                  f"{info.build_seconds:.1f}s -> {info.path}")


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="What to search for; '-' reads standard input.")],
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, max=200, help="How many clauses to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
    product: Annotated[str | None, typer.Option("--product", help="Only the documents governing this product (weixin, wechat, wecom).")] = None,
) -> None:
    """Search the policies by meaning; every hit is one clause.

    Examples:
        policyqa search "selling fake ID cards"
        policyqa search "selling fake ID cards" -k 3 --json
    """
    with _user_errors():
        query = check_text(_read_text_argument(text), max_chars=load_settings().max_query_chars)
        hits = _open_index().search(query, top_k=k, product=product)
        if as_json:
            print(json.dumps([_hit_json(h) for h in hits], indent=2, ensure_ascii=False))
            return
        for hit in hits:
            out.print(f"[bold]{hit.rank:>2}. {hit.clause.clause_id}[/]  [dim]{hit.clause.heading}[/]", highlight=False)
            out.print(f"    {' '.join(hit.clause.text.split())[:300]}", highlight=False, markup=False)
            dense = f"{hit.dense_score:.3f}" if hit.dense_score is not None else "-"
            bm25 = f"{hit.bm25_score:.2f}" if hit.bm25_score is not None else "-"
            out.print(f"    [dim]fused {hit.fused_score:.4f} · dense {dense} · bm25 {bm25} · {hit.clause.stance}[/]")


_VERDICT_STYLE = {"prohibited": "bold red", "violation": "bold red", "allowed": "bold green", "no_violation": "bold green",
                  "informational": "bold blue", "not_covered": "bold yellow", "needs_review": "bold yellow"}


def _print_citation(citation, prefix: str = "") -> None:
    governs = f" · governs {', '.join(citation.products)}" if citation.products else ""
    out.print(f"  {prefix}[bold]{citation.clause_id}[/]  [dim]{citation.document} > {citation.heading_path}{governs}[/]",
              highlight=False)
    out.print(f"    “{' '.join(citation.quote.split())}”", highlight=False, markup=False)
    if citation.applies_because:
        out.print(f"    [dim]why: {citation.applies_because}[/]", highlight=False)


def _print_result(result) -> None:
    style = _VERDICT_STYLE.get(result.verdict, "bold")
    out.print(f"[{style}]{result.verdict.upper()}[/]  confidence {result.confidence:.2f}  engine {result.engine}")
    out.print(result.summary, highlight=False, markup=False)
    cited = getattr(result, "violations", None) or getattr(result, "citations", [])
    for citation in cited:
        _print_citation(citation)
        if getattr(citation, "message_span", None):
            out.print("    [dim]message:[/] ", end="")
            out.print(citation.message_span, highlight=False, markup=False)
    for penalty in getattr(result, "penalties", []):
        _print_citation(penalty, prefix="penalty: ")
    if not cited and result.considered:
        out.print("[dim]Nearest clauses considered:[/]")
        for citation in result.considered:
            _print_citation(citation)
    for note in result.notes:
        out.print(f"[dim]note: {note}[/]", highlight=False)


_PRODUCT_HELP = "Where the content is posted: weixin, wechat or wecom (corpus/products.toml). Citations and penalties then come from the documents governing it."
_SURFACE_HELP = "Where in the product: group, chat, moments or official-account (corpus/products.toml); a group adds group penalties."


def _caller(kind: str, product: str | None, surface: str | None, index, settings) -> Callable[[list[str]], list[Any]]:
    """The batch function for a kind of row: ask_many or judge_many bound to the index."""
    if kind == "ask":
        return lambda texts: ask_many(texts, product=product, index=index, settings=settings)
    return lambda texts: judge_many(texts, product=product, surface=surface, index=index, settings=settings)


def _run_batch(kind: str, source: Path, target: Path | None, product: str | None = None, surface: str | None = None) -> None:
    """Answer every row of `source` into `target` (JSONL), skipping rows already written (a rerun
    resumes; see _batch.done_ids and pending), or to standard output when there is no target. Every
    answer goes to the audit trail with its row id, then a tally of verdicts ends the run; exit
    status 1 when there were rows and every one of them failed."""
    from collections import Counter

    if not source.is_file():
        raise typer.BadParameter(f"{source} is not a file")
    if target is not None and target.is_dir():  # checked before the model loads (half a minute)
        _fail(f"--out {target} is a folder; give the JSONL file to write")
    if target is not None and not target.parent.is_dir():
        _fail(f"--out {target}: the folder {target.parent} does not exist")
    done = done_ids(target) if target is not None else Counter()
    given = read_rows(source.read_bytes(), source.name)
    rows = pending(given, done)
    settings = load_settings()
    index = _open_index()
    call = _caller(kind, product, surface, index, settings)
    batch_id = new_batch_id(source.name)
    record = audit_recorder(open_store(settings), kind, index, source="batch", product=product, surface=surface,
                            batch_id=batch_id)
    tally: Counter[str] = Counter()
    with (target.open("a", encoding="utf-8") if target else nullcontext(sys.stdout)) as sink, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task(f"{kind}: {source.name}", total=len(rows))
        for line in run_rows(rows, call, progress=lambda n, total: bar.update(task, completed=n), record=record):
            tally[line.get("verdict", "error")] += 1
            sink.write(json.dumps(line, ensure_ascii=False) + "\n")
            sink.flush()
    where = target or "standard output"
    errors = tally["error"]
    err.print(f"Wrote {len(rows)} rows to {where} ({errors} error rows; {len(given) - len(rows)} already there were "
              f"skipped); audit batch {batch_id}.", highlight=False, markup=False)
    err.print("  ".join(f"{verdict} {n}" for verdict, n in tally.most_common()) or "no rows", highlight=False, markup=False)
    if rows and errors == len(rows):
        _fail(f"every one of the {len(rows)} rows failed; see the 'error' field of each")


def _run_ray_batch(source: Path, target: Path, product: str | None, surface: str | None, address: str | None) -> None:
    """judge --file ... --ray: the batch on Ray Data into the folder `target`, in the input's format
    (.jsonl in, JSONL files out; otherwise Parquet); a rerun resumes."""
    settings = load_settings()
    fmt = "jsonl" if source.suffix.lower() == ".jsonl" else "parquet"
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err) as bar:
        task = bar.add_task(f"judge on Ray: {source.name}", total=None)
        summary = judge_with_ray(source, target, address=address, product=product, surface=surface,
                                 settings=settings, fmt=fmt,
                                 progress=lambda n, total: bar.update(task, completed=n, total=total))
    err.print(f"Ruled {summary.ruled} rows ({summary.errors} error rows; {summary.skipped} already done were skipped) "
              f"into {summary.out_dir} in {summary.seconds:.0f}s.")


def _single_or_batch(kind: str, text: str | None, file: Path | None, out_path: Path | None, as_json: bool,
                     product: str | None = None, surface: str | None = None) -> None:
    with _user_errors():
        if file is not None:
            _run_batch(kind, file, out_path, product, surface)
            return
        if out_path is not None:
            raise typer.BadParameter("--out goes with --file")
        if text is None:
            raise typer.BadParameter("give the text, '-' for standard input, or --file")
        settings = load_settings()
        checked = check_text(_read_text_argument(text), max_chars=settings.max_query_chars,
                             what="question" if kind == "ask" else "message")
        index = _open_index()
        result = _caller(kind, product, surface, index, settings)([checked])[0]
        stamp = audit_recorder(open_store(settings), kind, index, source="cli", product=product, surface=surface)(
            [result], [None])[0]
        if as_json:
            print(json.dumps({**result.model_dump(mode="json"), **stamp}, indent=2, ensure_ascii=False))
        else:
            _print_result(result)
            out.print(f"[dim]record {stamp['record_id']} · decide with: policyqa decide {stamp['record_id']} "
                      f"--agree, or --verdict ... --clause ...[/]", highlight=False)


@app.command("ask")
def ask_command(
    question: Annotated[str | None, typer.Argument(help="The question; '-' reads standard input.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A .jsonl or .csv of rows with id and text.")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="Where batch answers go (JSONL; a rerun resumes; default: standard output).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    product: Annotated[str | None, typer.Option("--product", help=_PRODUCT_HELP)] = None,
) -> None:
    """Ask whether something is allowed; the answer cites the clauses that decide it.

    Examples:
        policyqa ask "Can a seller put a QR code to her group in her profile photo?"
        policyqa ask "Can I add customers in bulk?" --product wecom
        policyqa ask --file questions.jsonl --out answers.jsonl
    """
    _single_or_batch("ask", question, file, out_path, as_json, product)


@app.command("judge")
def judge_command(
    message: Annotated[str | None, typer.Argument(help="The message; '-' reads standard input.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A .jsonl or .csv of rows with id and text (with --ray: .parquet or .jsonl).")] = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="Where batch rulings go (JSONL; with --ray a folder; a rerun resumes; default: standard output).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the ruling as JSON.")] = False,
    product: Annotated[str | None, typer.Option("--product", help=_PRODUCT_HELP)] = None,
    surface: Annotated[str | None, typer.Option("--surface", help=_SURFACE_HELP)] = None,
    on_ray: Annotated[bool, typer.Option("--ray", help="Run the --file batch on Ray Data (the package's 'ray' extra): one file per block in the --out folder, Parquet, or JSONL for a .jsonl input.")] = False,
    address: Annotated[str | None, typer.Option("--address", help="With --ray: a running cluster, 'auto' on a node of it or ray://host:10001 (default: a local Ray on this machine).")] = None,
) -> None:
    """Rule on a pasted message: the clauses it breaks, the offending words and the penalties.

    Examples:
        policyqa judge "selling fake ID cards, any province, add my wx"
        policyqa judge "invoices for sale, any amount" --product weixin --surface group
        policyqa judge --file messages.csv --out rulings.jsonl --product wecom
        policyqa judge --file messages.parquet --out rulings/ --ray --address auto
    """
    if on_ray:
        with _user_errors():
            if file is None or out_path is None or message is not None:
                raise typer.BadParameter("--ray runs a batch: give --file and --out, not a message")
            _run_ray_batch(file, out_path, product, surface, address)
        return
    if address is not None:
        raise typer.BadParameter("--address goes with --ray")
    _single_or_batch("judge", message, file, out_path, as_json, product, surface)


@app.command("eval")
def eval_command(
    dataset: Annotated[list[Path] | None, typer.Option("--dataset", help="A JSONL file or folder; repeatable. Overrides --split.")] = None,
    split: Annotated[str, typer.Option("--split", help="dev (tune on it) or test (report on it).")] = "dev",
    engine: Annotated[str, typer.Option("--engine", help="offline, or llm (needs POLICYQA_LLM_* settings).")] = "offline",
    out_dir: Annotated[Path | None, typer.Option("--out", help="Report folder (default: .policyqa/reports/<time>).")] = None,
    no_llama_baseline: Annotated[bool, typer.Option("--no-llama-baseline", help="Skip the llama-index baseline.")] = False,
) -> None:
    """Measure how often verdicts and citations are right, next to the baselines.

    Writes report.json, report.md, PNG plots and failures.jsonl.

    Examples:
        policyqa eval --split test --out reports/test
        policyqa eval --dataset my_items.jsonl
    """
    if split not in {"dev", "test"}:
        raise typer.BadParameter("--split is dev or test")
    if engine not in {"offline", "llm"}:
        raise typer.BadParameter("--engine is offline or llm")
    with _user_errors():
        settings = load_settings()
        target = out_dir or settings.home / "reports" / f"{split if not dataset else 'custom'}-{engine}"
        if dataset:
            load_dataset(dataset)  # a bad dataset fails before any model loads
        index = _open_index()
        with _progress_bar() as report:
            result = evaluate(dataset or None, split=split, engine=engine, out_dir=target, index=index,
                              settings=settings, with_llama_baseline=not no_llama_baseline,
                              progress=report)
        for name, value in result.headline().items():
            out.print(f"{name:30} {value:.3f}")
        out.print(f"{len(result.failures)} misses. Report: {target / 'report.md'}")


@app.command("check-data")
def check_data(
    paths: Annotated[list[Path] | None, typer.Argument(help="Training .jsonl files or folders (default: corpus/training/).")] = None,
) -> None:
    """Validate training data: every item's clause ids exist and its quotes are verbatim in them.

    Prints one line per problem (file:line: what) and a count of items by label.

    Examples:
        policyqa check-data
        policyqa check-data corpus/training/en/weixin-1.jsonl
    """
    from collections import Counter

    with _user_errors():
        items, problems = check_training_data(paths or None)
    for problem in problems:
        err.print(problem, highlight=False, markup=False)
    counts = Counter((i.lang, i.kind, i.label if not i.is_permitted_case else "no_violation (permitted)") for i in items)
    for (lang, kind, label), n in sorted(counts.items()):
        out.print(f"{lang} {kind:8} {label:26} {n:6}")
    per_clause = Counter(c for i in items if i.label == "violation" for c in i.clause_ids)
    questions = Counter(c for i in items if i.label == "prohibited" for c in i.clause_ids)
    named = set(per_clause) | set(questions)
    thin = sorted(c for c in named if per_clause[c] < 6 or questions[c] < 2)
    out.print(f"{len(items)} valid items; {len(problems)} problems; {len(named)} prohibiting clauses covered, "
              f"{len(thin)} of them with fewer than 6 messages or 2 questions" + (f": {', '.join(thin[:20])}" if thin else ""))
    if problems:
        raise typer.Exit(code=1)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option("--host", help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes; each loads its own index.")] = 1,
) -> None:
    """Serve the HTTP API (JSON; OpenAPI docs at /docs) until interrupted.

    POLICYQA_API_KEY, when set, is required as 'Authorization: Bearer <key>' on /v1/*.

    Examples:
        policyqa serve
        policyqa serve --port 9000 --workers 2
        curl -s localhost:8000/v1/judge -H 'content-type: application/json' -d '{"text": "fake ID cards, dm me"}'
    """
    from policyqa import serve  # on first use only: other commands do not import FastAPI and uvicorn

    with _user_errors():  # serve() checks the settings before uvicorn starts: a bad one is a readable error
        serve(host=host, port=port, workers=workers)


# --- Decisions, the review queue, the audit trail and feedback ---------------------------------------

audit_app = typer.Typer(help="The audit trail of every answer and ruling made.", no_args_is_help=True)
feedback_app = typer.Typer(help="Reviewers' decisions, as evaluation data.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(feedback_app, name="feedback")


@app.command("decide")
def decide_command(
    record_id: Annotated[str, typer.Argument(help="The record id a ruling or answer printed (or the queue lists).")],
    agree: Annotated[bool, typer.Option("--agree", help="The verdict and clauses are right.")] = False,
    verdict: Annotated[str | None, typer.Option("--verdict", help="The right verdict: violation or no_violation for a message; prohibited, allowed, informational or not_covered for a question.")] = None,
    clause: Annotated[list[str] | None, typer.Option("--clause", help="A clause that decides it (repeatable); needed for violation and prohibited.")] = None,
    note: Annotated[str, typer.Option("--note", help="Why, for whoever reads the audit trail.")] = "",
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Who decides (default: your user name).")] = None,
) -> None:
    """Record a reviewer's decision on a ruling or answer; a later decision supersedes it.

    Examples:
        policyqa decide 3f2a... --agree
        policyqa decide 3f2a... --verdict violation --clause weixin-standards/II.9.1.12 --note "fapiao resale"
    """
    with _user_errors():
        if not agree and verdict is None:
            raise typer.BadParameter("give --agree or --verdict")
        settings = load_settings()
        index = _open_index() if clause else None
        decision = open_store(settings).decide(
            record_id, reviewer=reviewer or default_reviewer() or "reviewer", verdict=verdict, agree=agree, clause_ids=clause or [],
            note=note, source="cli", known_clause_ids={c.clause_id for c in index.clauses} if index else None)
        out.print(f"Recorded: {decision.verdict} ({', '.join(decision.clause_ids) or 'no clause'}) by {decision.reviewer}.",
                  highlight=False, markup=False)


@app.command("queue")
def queue_command(
    source: Annotated[str | None, typer.Option("--source", help="Only rulings made in: app, cli, api or batch.")] = None,
    product: Annotated[str | None, typer.Option("--product", help="Only rulings on content posted in this product.")] = None,
    batch: Annotated[str | None, typer.Option("--batch", help="Only this batch (its id is printed when it ends).")] = None,
    contains: Annotated[str | None, typer.Option("--contains", help="Only messages containing this text.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
) -> None:
    """List the rulings that need review and have no decision yet, oldest first.

    Example: policyqa queue --source batch --limit 20
    """
    with _user_errors():
        pending = open_store(load_settings()).queue(source=source, product=product, batch_id=batch, contains=contains,
                                                    limit=limit)
    if as_json:
        for record in pending:
            print(record.model_dump_json())
        return
    table = Table("record", "when", "source", "message", box=None)
    for record in pending:
        text = " ".join((record.input_text or f"(text not kept; sha256 {record.input_sha256[:12]})").split())
        table.add_row(record.record_id, f"{record.created_at:%Y-%m-%d %H:%M}", record.source,
                      escape(text[:80] + ("…" if len(text) > 80 else "")))
    out.print(table)
    err.print(f"{len(pending)} waiting. Decide: policyqa decide <record> --verdict violation --clause <id>", highlight=False,
              markup=False)


@audit_app.command("export")
def audit_export(
    out_path: Annotated[Path | None, typer.Option("--out", help="The file to write (default: standard output).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="jsonl or csv (default: from --out's suffix, else jsonl).")] = None,
) -> None:
    """Write the audit trail (every ruling and answer, with the decision on it) as JSONL or CSV.

    Examples:
        policyqa audit export --out audit.csv
        policyqa audit export --format jsonl | head
    """
    chosen = fmt or (out_path.suffix.lstrip(".").lower() if out_path and out_path.suffix else "jsonl")
    if chosen not in {"jsonl", "csv"}:
        raise typer.BadParameter("--format is jsonl or csv")
    with _user_errors():
        store = open_store(load_settings())
        with (out_path.open("w", encoding="utf-8", newline="") if out_path else nullcontext(sys.stdout)) as sink:
            count = write_audit(store, sink, chosen)
    err.print(f"Wrote {count} audit rows to {out_path or 'standard output'}.", highlight=False, markup=False)


@feedback_app.command("export")
def feedback_export(
    out_path: Annotated[Path, typer.Option("--out", help="The JSONL dataset to write.")],
) -> None:
    """Write reviewed items as an evaluation dataset (gold quotes taken verbatim from the chosen clauses).

    Example: policyqa feedback export --out reviewed.jsonl && policyqa eval --dataset reviewed.jsonl
    """
    with _user_errors():
        settings = load_settings()
        index = _open_index()
        count, skipped = export_feedback(open_store(settings), {c.clause_id: c for c in index.clauses}, out_path)
    for reason in skipped:
        err.print(f"skipped {reason}", highlight=False, markup=False)
    err.print(f"Wrote {count} reviewed items to {out_path} ({len(skipped)} skipped). "
              f"Score them: policyqa eval --dataset {out_path}", highlight=False, markup=False)


def _hit_json(hit) -> dict[str, Any]:
    clause = hit.clause
    return {
        "rank": hit.rank,
        "clause_id": clause.clause_id,
        "document": clause.document_title,
        "heading_path": clause.heading,
        "stance": clause.stance,
        "text": clause.text,
        "fused_score": hit.fused_score,
        "dense_score": hit.dense_score,
        "dense_rank": hit.dense_rank,
        "bm25_score": hit.bm25_score,
        "bm25_rank": hit.bm25_rank,
    }


if __name__ == "__main__":
    app()
