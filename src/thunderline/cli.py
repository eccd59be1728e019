"""The ``thunderline`` command: a thin shell over the :class:`~thunderline.ingestor.Ingestor`.

``ingest`` runs the pipeline over files; ``doctor`` checks the installation; ``dlq`` lists and
replays dead letters; ``config`` shows the effective settings. Sub-commands of the model
registry (``models``) and the voxel store (``voxels``) are mounted from their packages by
plain imports (a misspelt name fails at import, never silently).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from thunderline import names
from thunderline.api.cli import serve_app, tokens_app
from thunderline.bus.factory import open_ingestor
from thunderline.classify.roots import HELD
from thunderline.classify.walk import Candidate, iter_candidates
from thunderline.config import Settings, mask_secrets, masked_dump
from thunderline.console import cli_settings, stdout_console
from thunderline.dlq.cli import dlq_app
from thunderline.errors import ThunderlineError
from thunderline.eventcli import events_app
from thunderline.eventdata import NlpAnalysis
from thunderline.events import CloudEvent
from thunderline.ids import short
from thunderline.journal import Journal
from thunderline.ml.cli import models_app
from thunderline.obs.command import observe
from thunderline.report import RunReport, record_schema, skipped_record
from thunderline.search.cli import export as export_command
from thunderline.search.cli import index_app
from thunderline.search.cli import search as search_command
from thunderline.sources.cli import sources_app, sync, watch_cmd
from thunderline.sources.reprocess_cli import reprocess
from thunderline.stagecli import stages_app
from thunderline.voxel.cli import voxels_app
from thunderline.webhooks.cli import webhooks_app
from thunderline.worker.cli import status as status_command
from thunderline.worker.cli import worker as worker_command

app = typer.Typer(
    name="thunderline",
    help="Turn raw files into trustworthy, queryable ML results.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Show the effective settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")

app.add_typer(dlq_app, name="dlq")
app.add_typer(models_app, name="models")
app.add_typer(voxels_app, name="voxels")
app.add_typer(serve_app, name="serve")
app.add_typer(tokens_app, name="tokens")
app.add_typer(events_app, name="events")
app.add_typer(stages_app, name="stages")
app.add_typer(index_app, name="index")
app.command("worker")(worker_command)
app.command("status")(status_command)
app.command("search")(search_command)
app.command("export")(export_command)
app.add_typer(sources_app, name="sources")
app.add_typer(webhooks_app, name="webhooks")
app.command("sync")(sync)
app.command("watch")(watch_cmd)
app.command("reprocess")(reprocess)

err_console = Console(stderr=True)


# ---- ingest --------------------------------------------------------------------------------
@app.command()
def ingest(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to ingest.", show_default=False)
    ] = None,
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Walk sub-folders.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON record per artifact (see --json-schema).")
    ] = False,
    json_schema: Annotated[
        bool, typer.Option("--json-schema", help="Print the JSON Schema of a --json record.")
    ] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve Prometheus /metrics on this port while the run lasts (TL_METRICS_PORT).",
            min=0,
            max=65535,
        ),
    ] = None,
    bus: Annotated[
        str | None,
        typer.Option("--bus", help="Submit to the shared RabbitMQ bus (amqp://…) and wait."),
    ] = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="With --json: every sentence and entity (default: a summary)."),
    ] = False,
) -> None:
    """Classify files (and run the enabled stages) and print a summary.

    A bad file ends as a DLQ entry and a line in the summary; the exit code is non-zero only
    when the run itself fails. With an ``amqp://`` bus (``--bus`` or ``TL_BUS_URL``) the files
    are submitted to the workers and exactly their own outcomes are printed.
    """
    if json_schema:
        print(json.dumps(record_schema(), indent=2))
        return
    if not paths:
        err_console.print("ingest: give at least one file or folder (or --json-schema)")
        raise typer.Exit(2)
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing:  # a typo on the command line is a usage error, not a dead letter
        for path in missing:
            shown = escape(names.shown(os.fsdecode(path)))
            err_console.print(f"ingest: no such file or folder: {shown}", soft_wrap=True)
        raise typer.Exit(2)
    settings = cli_settings()
    if bus is not None:
        settings = settings.model_copy(update={"bus": settings.bus.model_copy(update={"url": bus})})
    report = RunReport()
    show_progress = sys.stderr.isatty() and not as_json
    candidates = iter_candidates(paths, recursive=recursive)  # a stream, never listed first
    try:
        with observe(settings, metrics_port=metrics_port):
            asyncio.run(
                _run_ingest(settings, candidates, report, as_json, show_progress, full=full)
            )
    except ThunderlineError as exc:
        err_console.print(f"[red]ingest failed:[/] {escape(mask_secrets(names.shown(str(exc))))}")
        raise typer.Exit(1) from exc
    finally:
        HELD.release_all()  # the roots the walk held open for the run (classify/roots.py)
    if not as_json:
        _print_summary(report, settings)


def _not_skipped(
    candidates: Iterable[Candidate], report: RunReport, as_json: bool = False
) -> Iterator[Candidate]:
    """The candidates to submit; skipped ones are recorded in the report instead.

    Skipped ones are directories without -r and symlinked folders; under ``--json`` each is
    also a record (``outcome`` skipped).
    """
    for candidate in candidates:
        if candidate.skipped:
            report.skipped.append((str(candidate.path), candidate.skipped))
            if as_json:
                record = skipped_record(
                    str(candidate.path), candidate.skip_reason or "skipped", candidate.skipped
                )
                print(names.dumps(record.to_json_dict()), flush=True)
        else:
            yield candidate


async def _run_ingest(
    settings: Settings,
    candidates: Iterable[Candidate],
    report: RunReport,
    as_json: bool,
    show_progress: bool,
    *,
    full: bool = False,
) -> None:
    progress = Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=not show_progress,
        transient=True,
    )
    task = progress.add_task("ingest", total=None)

    def on_terminal(event: CloudEvent) -> None:
        record = report.add(event)
        if record is None:  # a degraded artifact's DLQ record: its voxel's record says it
            return
        progress.advance(task)
        if as_json:
            # exact names (names.py)
            print(names.dumps(record.to_json_dict(full=full)), flush=True)

    started = time.perf_counter()
    with progress:
        async with open_ingestor(settings, on_outcome=on_terminal) as ingestor:
            submitted = await ingestor.submit_files(_not_skipped(candidates, report, as_json))
            progress.update(task, total=submitted)
            await ingestor.wait_idle()
    report.wall_s = time.perf_counter() - started


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def _print_summary(report: RunReport, settings: Settings) -> None:
    console = stdout_console()
    table = Table(title="Artifacts", show_lines=False)
    for column in ("file", "label", "group", "score", "outcome", "voxel", "correlation"):
        table.add_column(column, no_wrap=column in ("voxel", "correlation"))
    for r in sorted(
        report.records, key=lambda r: (r.archive or r.path or "", r.archive is not None)
    ):
        if r.outcome == "ok":
            outcome = "[green]ok[/]"
        elif r.outcome == "degraded":
            failed = ", ".join(f"{f.stage}:{f.reason}" for f in r.failed)
            outcome = f"[yellow]degraded {escape(failed)}[/]"
        else:
            outcome = f"[red]dlq {escape(f'{r.stage}:{r.reason}')}[/]"
        name = _shown_name(r.path)
        table.add_row(
            f"  ↳ {name}" if r.archive else name,
            r.label or "-",
            r.group or "-",
            "-" if r.score is None else f"{r.score:.3f}",
            outcome,
            short(r.voxel_id) if r.voxel_id else "-",
            short(r.correlation_id),
        )
    console.print(table)
    _print_results(console, report)

    labels = Table(title="Counts by label")
    labels.add_column("label")
    labels.add_column("count", justify="right")
    for label, count in labels_sorted(report.labels()):
        labels.add_row(label, str(count))
    console.print(labels)

    summary = Table(title="Summary", show_header=False)
    summary.add_column("what")
    summary.add_column("value", justify="right")
    summary.add_row("artifacts", str(len(report.records)))
    summary.add_row("ok", str(len(report.ok)))
    summary.add_row("degraded (stored, a stage failed)", str(len(report.degraded)))
    for r in report.degraded:
        for f in r.failed:
            summary.add_row(
                f"  failed {_shown_name(r.path)}",
                escape(f"{f.stage}:{f.reason} (dlq {short(f.dlq_id)})"),
            )
    summary.add_row("dead-lettered", str(len(report.dlq)))
    for reason, count in sorted(report.dlq_reasons().items()):
        summary.add_row(f"  dlq {reason}", str(count))
    for path, why in report.skipped:
        summary.add_row(f"  skipped {_shown_name(path)}", escape(why))
    for r in report.records:  # what a stage noted instead of a result (a deep archive, ...)
        for note in r.notes:
            summary.add_row(f"  note {_shown_name(r.path)}", escape(names.shown(note)))
    latency = report.latency_ms()
    summary.add_row(
        "classify p50 / p95 / p99", " / ".join(_fmt_ms(latency[k]) for k in ("p50", "p95", "p99"))
    )
    waited = report.queue_wait_ms()
    summary.add_row(
        "  queue wait p50 / p95 / p99",
        " / ".join(_fmt_ms(waited[k]) for k in ("p50", "p95", "p99")),
    )
    summary.add_row("wall time", f"{report.wall_s:.2f} s")
    summary.add_row("journal", str(Journal(settings.home).dir))
    console.print(summary)


def _shown_name(path: str | None) -> str:
    """A file name for a rich table: escapes visible (names.shown), no rich markup."""
    return escape(names.shown(Path(path).name)) if path else "?"


def labels_sorted(counter: Any) -> list[tuple[str, int]]:
    """Counter items by count (highest first), then by name."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


def _print_results(console: Console, report: RunReport) -> None:
    """Entities and sentences (nlp) and top labels (inference) of the artifacts that have them."""
    for r in sorted(report.stored, key=lambda r: r.path or ""):
        name = _shown_name(r.path)
        if isinstance(r.nlp, NlpAnalysis):  # records of a run hold the full result
            nlp = r.nlp
            ents = escape(
                names.shown(
                    ", ".join(f"{' '.join(e.text.split())} ({e.label})" for e in nlp.entities[:8])
                )
            )
            console.print(
                f"[bold]{name}[/] nlp lang={nlp.lang} sentences={len(nlp.sentences)} "
                f"entities={len(nlp.entities)}: {ents}"
            )
        if r.inference is not None:
            inference = r.inference
            top = ", ".join(f"{t.label} {t.score:.3f}" for t in inference.top_k[:3])
            if not inference.confident:  # below the model's threshold: not a fact
                top = f"no confident label (below {inference.threshold}; raw: {top})"
            console.print(f"[bold]{name}[/] {inference.model} v{inference.version}: {top}")


# ---- doctor --------------------------------------------------------------------------------
@app.command()
def doctor() -> None:
    """Check the installation: settings, home, Magika, and each enabled part."""
    settings = cli_settings()
    rows: list[tuple[str, str, str]] = []
    try:
        settings.home.mkdir(parents=True, exist_ok=True)
        probe = settings.home / ".doctor"
        probe.write_text("ok")
        probe.unlink()
        rows.append(("home", "ok", str(settings.home.resolve())))
    except OSError as exc:
        rows.append(("home", "fail", f"{settings.home}: {exc}"))
    if settings.enable_ml_pipeline:
        try:
            from thunderline.classify.classifier import MagikaClassifier

            clf = MagikaClassifier(settings.magika.prediction_mode)
            rows.append(("magika", "ok", f"magika {clf.version}, model {clf.model_name}"))
        except Exception as exc:
            rows.append(("magika", "fail", f"{exc} (pip install magika)"))
    else:
        rows.append(
            ("ml pipeline", "warn", "TL_ENABLE_ML_PIPELINE=false: no Magika, spaCy or ONNX")
        )
    from thunderline.ml.doctor import doctor_report as ml_report
    from thunderline.nlp.doctor import doctor_report as nlp_report
    from thunderline.voxel.doctor import doctor_report as voxel_report
    from thunderline.worker.doctor import doctor_report as worker_report

    for module, report in (
        ("thunderline.nlp", nlp_report),
        ("thunderline.ml", ml_report),
        ("thunderline.voxel", voxel_report),
        ("thunderline.worker", worker_report),
    ):
        try:
            rows.extend(report(settings))
        except Exception as exc:
            rows.append((module, "fail", str(exc)))
    table = Table(title="thunderline doctor")
    for column in ("check", "status", "detail"):
        table.add_column(column)
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    for check, status, detail in rows:
        shown = escape(mask_secrets(names.shown(detail)))
        table.add_row(check, f"[{colours.get(status, 'white')}]{status}[/]", shown)
    stdout_console().print(table)
    if any(status == "fail" for _, status, _ in rows):
        raise typer.Exit(1)


# ---- config --------------------------------------------------------------------------------
@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON."""
    settings = cli_settings()
    print(json.dumps(masked_dump(settings), indent=2))  # passwords and keys as ***


def main() -> None:
    """Entry point of the ``thunderline`` command."""
    app()


if __name__ == "__main__":
    main()
