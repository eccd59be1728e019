"""``thunderline reprocess`` and ``thunderline voxels results`` (see :mod:`.reprocess`)."""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from thunderline import names
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ConfigError, ThunderlineError
from thunderline.sources.reprocess import STAGES, Reprocessor, RunInfo
from thunderline.voxel.lifecycle_cli import _actor
from thunderline.voxel.store import VoxelStore
from thunderline.webhooks.core import Webhooks

err_console = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON out (one object per line).")]


def _fail(exc: ThunderlineError, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]{exc.reason}:[/] {escape(names.shown(str(exc)))}")
    return typer.Exit(code)


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def _summary(info: RunInfo) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in sorted(info.counts.items())) or "nothing"
    model = f" --model {info.model}" if info.model else ""
    return f"run {info.id} ({info.stage}{model}, {info.state}): {counts} of {info.total}"


def reprocess(
    query: Annotated[
        str, typer.Argument(help="Search query choosing the voxels (empty: every voxel).")
    ] = "",
    stage: Annotated[
        str | None, typer.Option("--stage", help=f"The stage to run again: {', '.join(STAGES)}.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="NAME@VERSION: the ONNX model (infer) or spaCy pipeline."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be taken; change nothing.")
    ] = False,
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue this run id where it stopped.")
    ] = None,
    runs: Annotated[bool, typer.Option("--runs", help="List the runs and their counts.")] = False,
    batch: Annotated[int, typer.Option(min=1, max=256, help="Voxels per stage batch.")] = 8,
    as_json: JsonOpt = False,
) -> None:
    """Run a stage again over stored voxels, keeping every result as a version.

    The new version is current; each names the model or extractor version that made it.

    The run's voxels are fixed when it starts; Ctrl-C stops it after the current batch and
    prints its id: `--resume ID` continues with what is left. Exit 2 on a bad stage, model or
    query; 1 when any voxel failed.
    """
    settings = cli_settings()
    try:
        with VoxelStore(settings) as store:
            worker = Reprocessor(settings, store)
            if runs:
                _print_runs(worker.runs.runs(), as_json)
                return
            if resume is None and stage is None:
                raise ConfigError("--stage is required (or --resume RUN_ID, or --runs)")
            if dry_run:
                assert stage is not None
                report = worker.dry_run(stage, query, model)
                if as_json:
                    print(names.dumps(report.to_json_dict()))
                else:
                    made = ", ".join(f"{p} {n}" for p, n in report.producers.items()) or "-"
                    stdout_console().print(
                        f"dry run: {report.matching} voxel(s) match; {report.with_result} have "
                        f"a current {stage} result (made by: {escape(made)})"
                        + (f"; {report.already} already by {model}" if model else "")
                    )
                return
            run_id = resume or worker.start(stage or "", query, model, actor=_actor())
            info = _run(worker, run_id, batch, as_json)
    except ConfigError as exc:
        raise _fail(exc, 2) from exc
    except ThunderlineError as exc:
        if exc.reason == "query_syntax":
            raise _fail(exc, 2) from exc
        raise _fail(exc) from exc
    if as_json:
        print(names.dumps(info.to_json_dict()))
    else:
        stdout_console().print(escape(_summary(info)))
        if info.counts.get("pending"):
            stdout_console().print(f"stopped: continue with --resume {info.id}")
    if info.counts.get("failed"):
        raise typer.Exit(1)


def _run(worker: Reprocessor, run_id: str, batch: int, as_json: bool) -> RunInfo:
    start = worker.info(run_id)
    progress = Progress(
        TextColumn(f"reprocess {start.stage}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json or not sys.stderr.isatty(),
    )
    task = progress.add_task("reprocess", total=start.total, completed=start.finished)

    async def go() -> RunInfo:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def on_progress(info: RunInfo) -> None:
            progress.update(task, completed=info.finished)

        return await worker.run(run_id, batch=batch, on_progress=on_progress, stop=stop)

    if not as_json:
        err_console.print(f"run {run_id}")
    with progress:
        return asyncio.run(go())


def _print_runs(runs: list[RunInfo], as_json: bool) -> None:
    if as_json:
        for info in runs:
            print(names.dumps(info.to_json_dict()))
        return
    table = Table(title="Reprocess runs")
    for column in ("run", "stage", "model", "query", "state", "done", "skipped", "failed", "of"):
        table.add_column(column, overflow="fold")
    for r in runs:
        table.add_row(
            r.id,
            r.stage,
            escape(r.model or "-"),
            escape(r.query or "(all)"),
            r.state,
            str(r.counts.get("done", 0)),
            str(r.counts.get("skipped", 0)),
            str(r.counts.get("failed", 0)),
            str(r.total),
        )
    stdout_console().print(table)


def results(
    voxel_id: Annotated[str, typer.Argument(help="Voxel id or unique prefix.")],
    as_json: JsonOpt = False,
) -> None:
    """Show every result version of a voxel by stage, side by side.

    For each: who made it, when, and which is current.
    """
    settings = cli_settings()
    try:
        with VoxelStore(settings) as store:
            worker = Reprocessor(settings, store)
            full_id = store.resolve_id(voxel_id)
            versions = worker.versions(full_id)
            tags = Webhooks(settings, engine=store.engine).tags(full_id)
    except ThunderlineError as exc:
        raise _fail(exc) from exc
    if as_json:
        for stage_versions in versions.values():
            for v in stage_versions:
                print(names.dumps(v.to_json_dict()))
        return
    table = Table(title=f"Result versions of {voxel_id}")
    for column in ("stage", "v", "made by", "current", "run", "when", "result"):
        table.add_column(column, overflow="fold")
    for stage, stage_versions in versions.items():
        for v in stage_versions:
            table.add_row(
                stage,
                str(v.seq),
                escape(v.producer),
                "*" if v.current else "",
                (v.run_id or "ingest")[:8],
                _when(v.created_unix),
                escape(_gist(stage, v.result)),
            )
    stdout_console().print(table)
    if tags:
        stdout_console().print("tags: " + escape(", ".join(tags)))


def _gist(stage: str, result: dict[str, object]) -> str:
    """A short line of a result: top labels, entity count, text size."""
    if stage == "infer":
        top = result.get("top_k") or []
        if isinstance(top, list):
            return ", ".join(f"{t['label']} {float(t['score']):.2f}" for t in top[:3])
    if stage == "nlp":
        entities = result.get("entities") or []
        return f"lang {result.get('lang')}, {len(entities) if isinstance(entities, list) else 0} entities"
    if stage == "extract":
        return f"{result.get('chars', 0)} chars ({result.get('content')})"
    return ""
