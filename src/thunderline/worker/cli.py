"""CLI of the scale-out workers: ``worker`` and ``status``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from thunderline.config import Settings
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ThunderlineError
from thunderline.ids import IdReferenceError, short
from thunderline.obs.command import observe
from thunderline.outcomes import OutcomeStore
from thunderline.report import RunReport
from thunderline.worker.runner import Worker, default_stages, parse_stages
from thunderline.worker.settle import final_outcomes

err_console = Console(stderr=True)


def worker(
    stages: Annotated[
        str | None,
        typer.Option(
            "--stages",
            help="Comma-separated: classify,extract,nlp,infer,package and/or collect "
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
    """Run pipeline stages as a stateless worker over the shared bus (TL_BUS_URL=amqp://…)."""
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
        if record is not None and as_json:
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
