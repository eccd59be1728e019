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
from thunderline.worker.settle import final_outcomes, settled

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


async def _unserved(settings: Settings) -> list[str]:
    """What a pending submission may wait for on a broker; nothing in-process.

    That is each stage queue with messages and no worker ("waiting for stage nlp: no worker serves
    it ...").
    """
    from thunderline.bus.factory import keeps_messages, open_bus
    from thunderline.bus.served import WATCHED_TOPICS, look, waiting_line

    if not keeps_messages(settings):
        return []
    quick = settings.bus.model_copy(
        update={"reconnect_timeout_s": min(settings.bus.reconnect_timeout_s, 5.0)}
    )
    bus = open_bus(settings.model_copy(update={"bus": quick}))
    try:
        await bus.connect()
        return [waiting_line(s) for s in await look(bus, WATCHED_TOPICS) if s.unserved]
    except ThunderlineError as exc:
        return [f"(the bus could not be asked what the submission waits for: {exc})"]
    finally:
        await bus.close()


def status(
    correlation_id: Annotated[
        str, typer.Argument(help="The correlation id of a submission (or its short id).")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per artifact.")] = False,
    full: Annotated[bool, typer.Option("--full", help="With --json: the full results.")] = False,
) -> None:
    """The outcomes recorded so far for one submission (voxel or DLQ per artifact).

    While it is unfinished on a broker, each stage queue that waits with no worker is named.
    """
    settings = cli_settings()
    try:
        with OutcomeStore(settings) as store:
            try:
                full_id = store.resolve_correlation(correlation_id) or correlation_id
            except IdReferenceError:  # no id can match it: answered as unknown below (exit 3)
                full_id = correlation_id
            records = store.by_correlation(full_id)
            found = list(final_outcomes(records).values())
        # not every artifact has its final outcome yet: say what a broker's queues wait for
        waiting = [] if full_id in settled(records) else asyncio.run(_unserved(settings))
    except ThunderlineError as exc:
        err_console.print(f"[red]status failed:[/] {exc}")
        raise typer.Exit(1) from exc
    for line in waiting:
        err_console.print(line, highlight=False, markup=False, soft_wrap=True)
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
