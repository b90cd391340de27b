"""The `policyqa` command. It holds no retrieval logic: it calls the public API and turns
PolicyQAError into a readable message with a non-zero exit status."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from policyqa import PolicyIndex, PolicyQAError, build_corpus, check_text, load_settings

app = typer.Typer(
    help="Answer 'is this allowed?' from platform policies, citing the exact clause.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

_STAGE_LABELS = {"parse": "Parsing clauses", "embed": "Embedding clauses", "index": "Writing indexes"}


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
    try:
        yield
    except PolicyQAError as exc:
        err.print(f"[bold red]Error:[/] {exc}", highlight=False)
        raise typer.Exit(code=1) from exc


def _read_text_argument(text: str) -> str | bytes:
    """'-' reads the text from standard input (as bytes, so binary junk is reported, not crashed on)."""
    return sys.stdin.buffer.read() if text == "-" else text


def _open_index(build: str = "missing") -> PolicyIndex:
    settings = load_settings()
    index = PolicyIndex(settings)
    if not settings.index_dir.exists():
        err.print(f"No index at {settings.index_dir}; building it now.")
    with _progress_bar() as report:
        return index.load(build=build, progress=report)


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
) -> None:
    """Search the policies by meaning; every hit is one clause.

    Examples:
        policyqa search "selling fake ID cards"
        policyqa search "selling fake ID cards" -k 3 --json
    """
    with _user_errors():
        query = check_text(_read_text_argument(text), max_chars=load_settings().max_query_chars)
        hits = _open_index().search(query, top_k=k)
        if as_json:
            print(json.dumps([_hit_json(h) for h in hits], indent=2, ensure_ascii=False))
            return
        for hit in hits:
            out.print(f"[bold]{hit.rank:>2}. {hit.clause.clause_id}[/]  [dim]{hit.clause.heading}[/]", highlight=False)
            out.print(f"    {' '.join(hit.clause.text.split())[:300]}", highlight=False, markup=False)
            dense = f"{hit.dense_score:.3f}" if hit.dense_score is not None else "-"
            bm25 = f"{hit.bm25_score:.2f}" if hit.bm25_score is not None else "-"
            out.print(f"    [dim]fused {hit.fused_score:.4f} · dense {dense} · bm25 {bm25} · {hit.clause.stance}[/]")


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
