"""CLI of the scale-out mode: ``worker``, ``status`` and the submitting half of ``ingest``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thunderline import names
from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ThunderlineError
from thunderline.ids import IdReferenceError, short
from thunderline.obs.command import observe
from thunderline.outcomes import OutcomeRecord, OutcomeStore
from thunderline.report import RunReport
from thunderline.worker.runner import Worker, default_stages, parse_stages
from thunderline.worker.settle import final_outcomes
from thunderline.worker.submit import Submitter, wait_outcomes

err_console = Console(stderr=True)


def worker(
    stages: Annotated[
        str | None,
        typer.Option(
            "--stages",
            help="Comma-separated: classify,nlp,infer,package and/or collect "
            "(default: every stage the settings enable, and collect).",
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", min=1, help="Concurrent batches per stage.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve Prometheus /metrics on this port while the worker runs (TL_METRICS_PORT).",
            min=0,
            max=65535,
        ),
    ] = None,
) -> None:
    """Run pipeline stages as a stateless worker over RabbitMQ (TL_BUS_URL=amqp://…)."""
    settings = cli_settings()
    try:
        names = parse_stages(stages) if stages else default_stages(settings)
        with observe(settings, metrics_port=metrics_port):
            asyncio.run(_run_worker(settings, names, concurrency))
    except ThunderlineError as exc:
        err_console.print(f"[red]worker failed:[/] {exc}")
        raise typer.Exit(1) from exc


async def _run_worker(settings: Settings, names: list[str], concurrency: int | None) -> None:
    await Worker(settings, names, concurrency=concurrency).run()


def submit_and_wait(
    settings: Settings,
    todo: Iterable[Candidate],
    report: RunReport,
    as_json: bool,
    *,
    full: bool = False,
) -> None:
    """``ingest`` in scale-out mode: submit, then print exactly our own outcomes."""

    def on_outcome(outcome: OutcomeRecord) -> None:
        record = report.add(outcome.event)
        if as_json:  # exact names (names.py)
            print(names.dumps(record.to_json_dict(full=full)), flush=True)

    async def run() -> None:
        started = time.perf_counter()
        async with Submitter(settings) as submitter:
            ids = await submitter.submit_all(todo)
        store = await asyncio.to_thread(OutcomeStore, settings)
        try:
            await wait_outcomes(store, ids, on_outcome=on_outcome)
        finally:
            store.close()
        report.wall_s = time.perf_counter() - started

    asyncio.run(run())


def status(
    correlation_id: Annotated[
        str, typer.Argument(help="The correlation id of a submission (or its short id).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per artifact.")] = False,
    full: Annotated[bool, typer.Option("--full", help="With --json: the full results.")] = False,
) -> None:
    """The outcomes recorded so far for one submission (voxel or DLQ per artifact)."""
    settings = cli_settings()
    try:
        with OutcomeStore(settings) as store:
            try:
                full_id = store.resolve_correlation(correlation_id) or correlation_id
            except IdReferenceError:  # no id can match it: answered as unknown below (exit 3)
                full_id = correlation_id
            found = list(final_outcomes(store.by_correlation(full_id)).values())
    except ThunderlineError as exc:
        err_console.print(f"[red]status failed:[/] {exc}")
        raise typer.Exit(1) from exc
    if not found:
        err_console.print(f"no outcome recorded for {correlation_id} (unknown or still running)")
        raise typer.Exit(3)
    report = RunReport()
    for outcome in found:
        record = report.add(outcome.event)
        if as_json:
            print(json.dumps(record.to_json_dict(full=full), ensure_ascii=False))
    if not as_json:
        console = stdout_console()
        for r in report.records:
            name = Path(r.path).name if r.path else "?"
            what = (
                f"voxel {short(r.voxel_id)}"
                if r.outcome == "ok" and r.voxel_id
                else f"dlq {r.stage}:{r.reason}"
            )
            console.print(f"{name}\t{r.label or '-'}\t{what}")
