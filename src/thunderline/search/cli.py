"""``thunderline search``, ``thunderline export`` and ``thunderline index rebuild``.

A malformed query exits 2 with the position of the mistake (and a caret under it); a failing
database exits 1 with the reason.
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from thunderline import names
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ThunderlineError
from thunderline.search.engine import SearchResult
from thunderline.search.export import FORMATS, check_format, encode, encode_parquet, iter_rows
from thunderline.search.lifecycle import rebuild
from thunderline.search.query import QuerySyntaxError, QueryTooLongError, parse
from thunderline.voxel.store import VoxelStore

index_app = typer.Typer(
    help="The search index: rebuild it over the stored voxels; embed text voxels for --similar.",
    no_args_is_help=True,
)
console = stdout_console()
_SPACES = re.compile(r"\s+")
err_console = Console(stderr=True)


def _open() -> VoxelStore:
    try:
        return VoxelStore(cli_settings())
    except ThunderlineError as exc:
        err_console.print(f"[red]cannot open the voxel store:[/] {exc}")
        raise typer.Exit(2) from exc


#: Characters of the query shown on each side of a mistake under its error message.
_AROUND = 30


def _around(query: str, position: int) -> tuple[str, int]:
    """The part of ``query`` shown under an error, and the caret's column in it.

    At most :data:`_AROUND` characters each side of ``position``, ``...`` where cut, made safe
    to print (``names.shown``: the caret stays under the character however it was escaped).
    """
    start, end = max(0, position - _AROUND), min(len(query), position + _AROUND)
    head = "..." if start else ""
    tail = "..." if end < len(query) else ""
    before = names.shown(query[start:position])
    return head + before + names.shown(query[position:end]) + tail, len(head) + len(before)


def _syntax(exc: QuerySyntaxError, query: str) -> typer.Exit:
    """Exit 2 with the error and, for a mistake in a query of allowed length, where it is.

    A query over the limit is not echoed: its message says its length, the limit and a short
    prefix (:class:`~thunderline.search.query.QueryTooLongError`).
    """
    err_console.print(f"[red]bad query:[/] {escape(str(exc))}")
    if query and exc.reason == "query_syntax" and not isinstance(exc, QueryTooLongError):
        shown, column = _around(query, exc.position)
        err_console.print("  " + escape(shown), highlight=False)
        err_console.print("  " + " " * column + "^", highlight=False)
    return typer.Exit(2)


def _shown_snippet(result_snippet: list[object]) -> str:
    parts = []
    for seg in result_snippet:
        text = escape(names.shown(_SPACES.sub(" ", seg.text)))  # type: ignore[attr-defined]
        parts.append(f"[bold yellow]{text}[/]" if seg.match else text)  # type: ignore[attr-defined]
    return "".join(parts)


def _print(result: SearchResult, facets: bool) -> None:
    title = f"{len(result.hits)} hit(s), by {result.order}"
    if result.total is not None:
        title += f", {result.total} in all"
    table = Table(title=title, show_lines=True)
    table.add_column("id", no_wrap=True)
    for column in ("name", "label", "lang", "kind", "snippet"):
        table.add_column(column, overflow="fold")
    for hit in result.hits:
        table.add_row(
            hit.voxel_id,
            escape(names.shown(hit.name)),
            escape(hit.label or "-"),
            escape(hit.lang or "-"),
            escape(hit.kind or "-"),
            _shown_snippet(list(hit.snippet)),
        )
    console.print(table)
    if facets:
        if result.facet_basis is not None and result.total and result.facet_basis < result.total:
            console.print(f"[dim]facet counts over {result.facet_basis} of the matches[/]")
        for name, values in result.facets.items():
            if values:
                shown = ", ".join(f"{escape(names.shown(v.value))} ({v.count})" for v in values)
                console.print(f"[bold]{name}[/]: {shown}")
    if result.next_cursor:
        console.print(f"next page: --cursor {result.next_cursor}")


def search(
    query: Annotated[
        str, typer.Argument(help='Words, "phrases", AND/OR/NOT, prefix*, field:value.')
    ] = "",
    as_json: Annotated[bool, typer.Option("--json", help="The result as one JSON object.")] = False,
    facets: Annotated[bool, typer.Option("--facets", help="Counts by label, language ...")] = False,
    order: Annotated[str, typer.Option(help="relevance or time.")] = "relevance",
    limit: Annotated[int, typer.Option(min=1, max=200, help="Hits per page.")] = 20,
    cursor: Annotated[str | None, typer.Option(help="Next page (from the previous one).")] = None,
    similar: Annotated[
        str | None,
        typer.Option(
            "--similar",
            help="Voxels most like this one (sentence embeddings); QUERY then only filters.",
        ),
    ] = None,
) -> None:
    """Full-text search over the stored voxels (text, names, entities, labels, models).

    Fields: label: group: lang: kind: entity:"..." entity.type: model:MODEL=LABEL name:
    after:DATE before:DATE size>10kb. Exit 2 on a malformed query, with its position.
    With --similar ID: the text voxels nearest to ID by meaning (cosine of all-MiniLM-L6-v2
    embeddings, `thunderline index embed`), restricted to those QUERY matches.
    """
    with _open() as store:
        try:
            if similar is not None:
                result = store.similar(
                    similar, query, limit=limit, cursor=cursor, embed_missing=True
                )
            else:
                result = store.search(
                    query,
                    order=order,  # type: ignore[arg-type]  # checked by search()
                    limit=limit,
                    cursor=cursor,
                    facets=facets,
                )
        except QuerySyntaxError as exc:
            raise _syntax(exc, query) from exc
        except ThunderlineError as exc:
            err_console.print(f"[red]{exc.reason}:[/] {exc}")
            raise typer.Exit(1) from exc
    if as_json:
        print(names.dumps(result.as_dict()))
        return
    _print(result, facets)


def export(
    query: Annotated[str, typer.Argument(help="Only voxels matching this query (all: '').")] = "",
    fmt: Annotated[str, typer.Option("--format", help=f"One of {', '.join(FORMATS)}.")] = "jsonl",
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write (default stdout).")
    ] = None,
    with_text: Annotated[bool, typer.Option("--text", help="Include the extracted text.")] = False,
) -> None:
    """Export the voxels matching a query as JSON Lines, CSV or Parquet, one row each.

    A row holds the voxel's id, name, labels, metadata, entities, model results and lineage
    parent ids (and with --text its text); rows are streamed in constant memory.
    """
    try:
        chosen = check_format(fmt)
        parse(query)
    except ValueError as exc:
        err_console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from exc
    except QuerySyntaxError as exc:
        raise _syntax(exc, query) from exc
    if chosen == "parquet" and out is None and sys.stdout.isatty():
        err_console.print("[red]parquet is binary: pass --out FILE (or redirect)[/]")
        raise typer.Exit(2)
    # --out is written beside itself and renamed when complete: a failed export never leaves a
    # truncated file under the name asked for
    partial = out.with_name(f".{out.name}.partial") if out else None
    if partial is not None:
        try:
            partial.open("wb").close()
        except OSError as exc:
            err_console.print(f"[red]cannot write {escape(str(out))}: {exc.strerror or exc}[/]")
            raise typer.Exit(2) from exc
    try:
        with _open() as store:
            rows = iter_rows(store, query, with_text=with_text)
            if chosen == "parquet":
                with open(partial, "wb") if partial else nullcontext(sys.stdout.buffer) as binary:
                    for data in encode_parquet(rows):
                        binary.write(data)
            else:
                with (
                    open(partial, "w", encoding="utf-8", newline="")
                    if partial
                    else nullcontext(sys.stdout)
                ) as handle:
                    for chunk in encode(rows, chosen):
                        handle.write(chunk)
                    handle.flush()
        if partial is not None and out is not None:
            partial.replace(out)
    except BrokenPipeError:  # `thunderline export | head`: the reader has what it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  # no flush error at exit
        raise typer.Exit(0) from None
    except ThunderlineError as exc:
        err_console.print(f"[red]{exc.reason}:[/] {exc}")
        raise typer.Exit(1) from exc
    except OSError as exc:
        err_console.print(
            f"[red]export failed writing {escape(str(out or 'stdout'))}: {exc.strerror or exc}[/]"
        )
        raise typer.Exit(1) from exc
    finally:
        if partial is not None:
            partial.unlink(missing_ok=True)
    if out:
        err_console.print(f"exported to {escape(str(out))}")


@index_app.command("rebuild")
def rebuild_cmd(
    force: Annotated[
        bool, typer.Option("--force", help="Rewrite every row, current or not.")
    ] = False,
) -> None:
    """Index every voxel missing from the search index or indexed stale (resumable).

    A stopped run loses nothing: the next one skips what is current. Exits 1 if any voxel
    could not be read.
    """
    with _open() as store:
        total = store.count()
        columns = (TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            with Progress(*columns, console=err_console, transient=True) as progress:
                task = progress.add_task("index", total=total)
                report = rebuild(store, force=force, progress=lambda n: progress.advance(task, n))
        except ThunderlineError as exc:
            err_console.print(f"[red]{exc.reason}:[/] {exc}")
            raise typer.Exit(1) from exc
    console.print(
        f"{report.seen} voxel(s): {report.written} indexed, {report.current} already current, "
        f"{report.failed} unreadable"
    )
    if report.failed:
        raise typer.Exit(1)


@index_app.command("embed")
def embed_cmd(
    force: Annotated[
        bool, typer.Option("--force", help="Embed every text voxel again, current or not.")
    ] = False,
) -> None:
    """Embed every text voxel that has no current sentence embedding (resumable).

    The embedding (all-MiniLM-L6-v2, ONNX) is stored for each text voxel that has none or
    one made from another text; it is what `search --similar` compares.
    """
    from thunderline.search.embed import Embedder
    from thunderline.search.similar import embed_missing

    with _open() as store:
        try:
            embedder = Embedder.from_settings(store.settings)
        except ThunderlineError as exc:
            err_console.print(f"[red]{exc.reason}:[/] {escape(str(exc))}")
            raise typer.Exit(2) from exc
        total = store.count()
        columns = (TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        try:
            with embedder, Progress(*columns, console=err_console, transient=True) as progress:
                task = progress.add_task("embed", total=total)
                report = embed_missing(
                    store, embedder, force=force, progress=lambda n: progress.advance(task, n)
                )
        except ThunderlineError as exc:
            err_console.print(f"[red]{exc.reason}:[/] {escape(str(exc))}")
            raise typer.Exit(1) from exc
    console.print(
        f"{report.seen} voxel(s): {report.embedded} embedded, {report.current} already current, "
        f"{report.no_text} without text, {report.failed} unreadable"
    )
    if report.failed:
        raise typer.Exit(1)
