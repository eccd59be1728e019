"""``thunderline dlq ...``: list, show and replay dead-letter records.

The records live in the outcome store (:class:`~thunderline.dlq.store.DeadLetters`). A replay
(:func:`~thunderline.dlq.replay.replay`) claims each record (``open`` -> ``replayed``) before
sending its original event again through the bus's
:class:`~thunderline.ingestor.Ingestor`, so replaying twice sends nothing twice; the record
becomes ``resolved`` when the artifact then ends as a voxel.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from thunderline import names
from thunderline.bus.factory import open_ingestor
from thunderline.config import Settings
from thunderline.console import cli_settings, stdout_console
from thunderline.dlq.record import Subject
from thunderline.dlq.replay import NotReplayableError, replay
from thunderline.dlq.store import DeadLetters
from thunderline.errors import ThunderlineError
from thunderline.events import CloudEvent
from thunderline.flow.engine import topic_for
from thunderline.outcomes import DLQ_STATUSES, OPEN, OutcomeRecord, OutcomeStore
from thunderline.report import RunReport

dlq_app = typer.Typer(help="List, show and replay dead-lettered messages.", no_args_is_help=True)
err_console = Console(stderr=True)


def _open(settings: Settings) -> OutcomeStore:
    try:
        return OutcomeStore(settings)
    except ThunderlineError as exc:
        err_console.print(f"[red]cannot open the outcome store:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _artifact_name(record: OutcomeRecord) -> str:
    return names.shown(Subject.of(record.event).name or record.artifact or "-")


@dlq_app.command("list")
def dlq_list(
    all_: Annotated[bool, typer.Option("--all", help="Every status, not only open.")] = False,
    status: Annotated[
        str | None, typer.Option(help=f"Only this status: {', '.join(DLQ_STATUSES)}.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most N records (oldest first).")] = 50,
    after: Annotated[str | None, typer.Option(help="Records after this id (paging).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per record.")] = False,
) -> None:
    """Dead-letter records (open ones unless --all / --status): id, status, stage, reason,
    artifact and error."""
    settings = cli_settings()
    if status is not None and status not in DLQ_STATUSES:
        err_console.print(f"unknown status {status!r}: use one of {', '.join(DLQ_STATUSES)}")
        raise typer.Exit(2)
    wanted = None if all_ else (status or OPEN)
    with _open(settings) as store:
        records = store.dlq(wanted, limit=limit, cursor=after)
    if as_json:
        for record in records:
            print(names.dumps(record.to_json_dict()), flush=True)
        return
    table = Table(title=f"DLQ, {wanted or 'every status'} ({len(records)} shown)")
    for column in ("id", "status", "stage", "reason", "artifact", "error"):
        table.add_column(column, overflow="fold")
    for record in records:
        error = str((record.event.data.get("error") or {}).get("message", ""))[:120]
        table.add_row(
            record.id,
            record.status,
            escape(record.stage or "-"),
            escape(record.reason or "-"),
            escape(_artifact_name(record)),
            escape(names.shown(error)),
        )
    stdout_console().print(table)


@dlq_app.command("show")
def dlq_show(
    record_id: Annotated[str, typer.Argument(help="DLQ record id (or 8+ chars).")],
) -> None:
    """One record in full as JSON: status, replay, and the DLQ event with original and
    traceback."""
    settings = cli_settings()
    with _open(settings) as store:
        record = store.dlq_get(record_id)
    if record is None:
        err_console.print(f"no DLQ record {escape(record_id)} (or the prefix is ambiguous)")
        raise typer.Exit(1)
    doc = record.to_json_dict()
    doc["created"] = datetime.fromtimestamp(record.created_unix, UTC).isoformat()
    print(names.dumps(doc, indent=2))


def _replayable(letters: DeadLetters, ids: list[str] | None) -> list[OutcomeRecord]:
    if not ids:
        return letters.all(OPEN)
    found: list[OutcomeRecord] = []
    for record_id in ids:
        letter = letters.get(record_id)
        if letter is None:
            err_console.print(f"no DLQ record {escape(record_id)}")
        elif letter.status != OPEN:
            err_console.print(f"{letter.id} is already {letter.status}: not sent again")
        else:
            found.append(letter)
    return found


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[
        list[str] | None, typer.Argument(help="DLQ record ids (default: every open record).")
    ] = None,
) -> None:
    """Send dead-lettered originals through the pipeline again (same correlation id).

    Each record is claimed first (open -> replayed): a record is never sent twice, also when
    two replays run at once. It becomes resolved when its artifact then ends as a voxel.
    """
    settings = cli_settings()
    report = RunReport()

    async def run() -> tuple[list[tuple[str, CloudEvent]], int, bool]:
        done: list[tuple[str, CloudEvent]] = []
        skipped = 0
        async with open_ingestor(settings, on_outcome=report.add) as ingestor:
            letters = DeadLetters(ingestor.outcomes)
            for letter in _replayable(letters, ids):
                try:
                    replayed = await replay(letters, letter, ingestor.submit)
                except NotReplayableError:
                    skipped += 1  # the raw message was not an event: nothing to send again
                    continue
                if replayed is not None:
                    done.append((letter.id, replayed))
            await ingestor.wait_idle()
            return done, skipped, ingestor.runtime is not None

    try:
        done, skipped, here = asyncio.run(run())
    except ThunderlineError as exc:
        err_console.print(f"[red]replay failed:[/] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    if not done:
        err_console.print(
            "nothing to replay" + (f" ({skipped} record(s) hold no event)" if skipped else "")
        )
    elif here:
        stdout_console().print(
            f"replayed {len(done)}: {len(report.ok)} ok, {len(report.dlq)} dead-lettered again"
        )
    else:  # the workers run the stages; their collector records the outcomes
        for record_id, event in done:
            print(f"{record_id} -> {event.id} ({topic_for(event)}, {event.correlationid})")
        err_console.print(f"replayed {len(done)} to the workers (thunderline status ID)")
