"""``thunderline dlq ...``: list, show and replay dead-letter records.

The records live in the outcome store (:mod:`thunderline.outcomes`); records of the journal's
``dlq.jsonl`` the store does not have yet (an older version, a run whose database was down)
are imported first. A replay claims each record (``open`` -> ``replayed``) before sending its
original event again, so replaying twice sends nothing twice; the record becomes ``resolved``
when the artifact then ends as a voxel.
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
from thunderline.config import Settings
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ThunderlineError
from thunderline.events import CloudEvent
from thunderline.journal import Journal
from thunderline.outcomes import DLQ_STATUSES, OPEN, OutcomeRecord, OutcomeStore
from thunderline.report import RunReport

dlq_app = typer.Typer(help="List, show and replay dead-lettered messages.", no_args_is_help=True)
err_console = Console(stderr=True)


def _open(settings: Settings) -> OutcomeStore:
    try:
        store = OutcomeStore(settings)
        store.import_events(Journal(settings.home).iter_dlq())
    except ThunderlineError as exc:
        err_console.print(f"[red]cannot open the outcome store:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc
    return store


def _artifact_name(record: OutcomeRecord) -> str:
    original = record.event.data.get("original") or {}
    artifact = (original.get("data") or {}).get("artifact") or {}
    name = artifact.get("name") or artifact.get("path") or record.artifact or "-"
    return names.shown(str(name))


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


def _replayable(store: OutcomeStore, ids: list[str] | None) -> list[OutcomeRecord]:
    if ids:
        found: list[OutcomeRecord] = []
        for record_id in ids:
            record = store.dlq_get(record_id)
            if record is None:
                err_console.print(f"no DLQ record {escape(record_id)}")
                continue
            if record.status != OPEN:
                err_console.print(f"{record.id} is already {record.status}: not sent again")
                continue
            found.append(record)
        return found
    records: list[OutcomeRecord] = []
    cursor: str | None = None
    while page := store.dlq(OPEN, limit=500, cursor=cursor):
        records.extend(page)
        cursor = page[-1].id
    return records


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
    from thunderline.runtime import Runtime

    settings = cli_settings()
    store = _open(settings)
    try:
        claimed: list[tuple[str, CloudEvent]] = []
        skipped = 0
        for record in _replayable(store, ids):
            original = record.event.data.get("original")
            if not isinstance(original, dict):
                skipped += 1  # the raw message was not an event: nothing to send again
                continue
            event = CloudEvent.from_dict(original)
            replay = event.derive(event.type, event.data, source="urn:thunderline:replay")
            if store.mark_replayed(record.id, replay.id):
                claimed.append((record.id, replay))
        if not claimed:
            err_console.print(
                "nothing to replay" + (f" ({skipped} record(s) hold no event)" if skipped else "")
            )
            return
        report = RunReport()

        async def run() -> None:
            async with Runtime(settings, on_terminal=report.add, outcomes=store) as runtime:
                for _, event in claimed:
                    await runtime.submit(event)
                await runtime.wait_idle()

        try:
            asyncio.run(run())
        except ThunderlineError as exc:
            for record_id, _ in claimed:
                store.reopen(record_id)
            err_console.print(f"[red]replay failed:[/] {escape(str(exc))}")
            raise typer.Exit(1) from exc
        stdout_console().print(
            f"replayed {len(claimed)}: {len(report.ok)} ok, {len(report.dlq)} dead-lettered again"
        )
    finally:
        store.close()
