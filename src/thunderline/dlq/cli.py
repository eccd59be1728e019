"""``thunderline dlq ...``: list (grouped), show, replay, dismiss and purge dead-letter records.

The records live in the outcome store (:class:`~thunderline.dlq.store.DeadLetters`). ``list``
groups repeated failures of one file (stage, reason, artifact) with a count, first and last
seen and the latest record; ``--records`` lists the records themselves. Each record is
*retryable*, *permanent* or *unknown* by its error type (:mod:`thunderline.dlq.triage`).

A replay (:func:`~thunderline.dlq.replay.replay`) sends retryable records only unless
``--all``; it claims each record (``open`` -> ``replayed``) before sending its original event
again through the bus's :class:`~thunderline.ingestor.Ingestor`, so replaying twice sends
nothing twice; the record becomes ``resolved`` when the artifact then ends as a voxel.
``dismiss`` closes records nobody will replay (who, when, why); ``purge`` deletes closed
records older than a duration. Every id may be the short id (:mod:`thunderline.ids`).
"""

from __future__ import annotations

import asyncio
import getpass
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
from thunderline.dlq.triage import choose, parse_duration
from thunderline.errors import ThunderlineError
from thunderline.events import CloudEvent
from thunderline.flow.engine import topic_for
from thunderline.outcomes import DLQ_STATUSES, OPEN, DlqGroup, OutcomeRecord, OutcomeStore
from thunderline.report import RunReport

dlq_app = typer.Typer(
    help="List (grouped), show, replay, dismiss and purge dead-lettered messages.",
    no_args_is_help=True,
)
err_console = Console(stderr=True)

GroupOpt = Annotated[
    str | None, typer.Option("--group", help="Every open record of this group (its id).")
]


def _open(settings: Settings) -> OutcomeStore:
    try:
        return OutcomeStore(settings)
    except ThunderlineError as exc:
        err_console.print(f"[red]cannot open the outcome store:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _fail(exc: ThunderlineError) -> typer.Exit:
    err_console.print(f"[red]{exc.reason}:[/] {escape(names.shown(str(exc)))}", soft_wrap=True)
    return typer.Exit(1)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container)
        return "cli"


def _artifact_name(record: OutcomeRecord) -> str:
    return names.shown(Subject.of(record.event).name or record.artifact or "-")


def _error(record: OutcomeRecord) -> str:
    error = record.event.data.get("error")
    return str((error if isinstance(error, dict) else {}).get("message", ""))[:120]


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _status(status: str | None, all_: bool) -> str | None:
    if status is not None and status not in DLQ_STATUSES:
        err_console.print(f"unknown status {status!r}: use one of {', '.join(DLQ_STATUSES)}")
        raise typer.Exit(2)
    return None if all_ else (status or OPEN)


@dlq_app.command("list")
def dlq_list(
    all_: Annotated[bool, typer.Option("--all", help="Every status, not only open.")] = False,
    status: Annotated[
        str | None, typer.Option(help=f"Only this status: {', '.join(DLQ_STATUSES)}.")
    ] = None,
    records: Annotated[
        bool, typer.Option("--records", help="The records themselves, not their groups.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1, help="At most N groups (or records).")] = 50,
    after: Annotated[
        str | None, typer.Option(help="With --records: records after this id (paging).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per group (or record).")
    ] = False,
) -> None:
    """List dead letters grouped by stage, reason and artifact (open ones unless --all/--status).

    Each group shows how many records it holds, when they were first and last seen, whether
    they are retryable or permanent, and the latest record. --records lists each record.
    """
    settings = cli_settings()
    wanted = _status(status, all_)
    with _open(settings) as store:
        if records:
            _list_records(store.dlq(wanted, limit=limit, cursor=after), wanted, as_json)
            return
        groups, total = store.dlq_groups(wanted, limit=limit)
    if as_json:
        for group in groups:
            print(names.dumps(group.to_json_dict()), flush=True)
        return
    _groups_table(groups, total, wanted)


def _groups_table(groups: list[DlqGroup], total: int, wanted: str | None) -> None:
    records = sum(g.count for g in groups)
    table = Table(
        title=f"DLQ groups, {wanted or 'every status'} ({len(groups)} of {total} groups, "
        f"{records} records)"
    )
    for column in ("group", "count", "kind", "stage", "reason", "artifact", "last seen"):
        table.add_column(column, overflow="fold")
    table.add_column("latest", overflow="fold")
    table.add_column("error", overflow="fold")
    for group in groups:
        table.add_row(
            group.id,
            str(group.count),
            group.latest.permanence,
            escape(group.stage or "-"),
            escape(group.reason or "-"),
            escape(_artifact_name(group.latest)),
            _when(group.last_unix),
            group.latest.short_id,
            escape(names.shown(_error(group.latest))),
        )
    stdout_console().print(table)


def _list_records(found: list[OutcomeRecord], wanted: str | None, as_json: bool) -> None:
    if as_json:
        for record in found:
            print(names.dumps(record.to_json_dict()), flush=True)
        return
    table = Table(title=f"DLQ records, {wanted or 'every status'} ({len(found)} shown)")
    for column in ("id", "status", "kind", "stage", "reason", "artifact", "group", "error"):
        table.add_column(column, overflow="fold")
    for record in found:
        table.add_row(
            record.short_id,
            record.status,
            record.permanence,
            escape(record.stage or "-"),
            escape(record.reason or "-"),
            escape(_artifact_name(record)),
            record.group_id or "-",
            escape(names.shown(_error(record))),
        )
    stdout_console().print(table)


@dlq_app.command("show")
def dlq_show(
    record_id: Annotated[str, typer.Argument(help="DLQ record id (short id or full id).")],
) -> None:
    """Show one record in full as JSON.

    The record's status, retryable or permanent, group, replay or dismissal, and the DLQ
    event with original and traceback.
    """
    settings = cli_settings()
    with _open(settings) as store:
        try:
            record = store.dlq_get(record_id)
        except ThunderlineError as exc:
            raise _fail(exc) from exc
    if record is None:
        err_console.print(f"no DLQ record {escape(record_id)}")
        raise typer.Exit(1)
    doc = record.to_json_dict()
    doc["created"] = datetime.fromtimestamp(record.created_unix, UTC).isoformat()
    print(names.dumps(doc, indent=2))


def _resolve(letters: DeadLetters, ids: list[str] | None, group: str | None) -> list[OutcomeRecord]:
    """The open records named by ids (short or full) and/or a group.

    Every open record when neither is given. Unknown or closed ones are reported on stderr
    and left out.
    """
    if not ids and group is None:
        return letters.all(OPEN)
    found: dict[str, OutcomeRecord] = {}
    if group is not None:
        key = letters.group_key(group)
        if key is None:
            err_console.print(f"no DLQ group {escape(group)}")
        else:
            found.update((r.id, r) for r in letters.of_group(key, OPEN))
    for record_id in ids or []:
        letter = letters.get(record_id)
        if letter is None:
            err_console.print(f"no DLQ record {escape(record_id)}")
        elif letter.status != OPEN:
            err_console.print(f"{letter.short_id} is already {letter.status}: left as it is")
        else:
            found[letter.id] = letter
    return sorted(found.values(), key=lambda r: r.id)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[
        list[str] | None,
        typer.Argument(help="DLQ record ids, short or full (default: every open record)."),
    ] = None,
    group: GroupOpt = None,
    all_: Annotated[
        bool,
        typer.Option("--all", help="Also permanent failures and unknown error types."),
    ] = False,
) -> None:
    """Send dead-lettered originals through the pipeline again (same correlation id).

    Only retryable failures are sent (a timeout, a backend away); permanent ones (a file too
    large, a damaged PDF) would fail the same way: --all sends them too. Each record is
    claimed first (open -> replayed): a record is never sent twice, also when two replays run
    at once. It becomes resolved when its artifact then ends as a voxel.
    """
    settings = cli_settings()
    report = RunReport()
    skipped_line = ""

    async def run() -> tuple[list[tuple[str, CloudEvent]], int, bool]:
        nonlocal skipped_line
        done: list[tuple[str, CloudEvent]] = []
        skipped = 0
        async with open_ingestor(settings, on_outcome=report.add) as ingestor:
            letters = DeadLetters(ingestor.outcomes)
            selection = choose(_resolve(letters, ids, group), force=all_)
            skipped_line = selection.describe_skipped(forced=all_)
            for letter in selection.send:
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
        err_console.print(f"[red]replay failed:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    if skipped_line:
        err_console.print(skipped_line, soft_wrap=True)
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


@dlq_app.command("dismiss")
def dlq_dismiss(
    ids: Annotated[list[str] | None, typer.Argument(help="DLQ record ids, short or full.")] = None,
    group: GroupOpt = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the record).")] = "",
) -> None:
    """Dismiss open records nobody will replay (a file known to be broken).

    They become dismissed, with who, when and why, and leave the open list and the open-DLQ
    gauge.
    """
    if not ids and group is None:
        err_console.print("name the records to dismiss: IDs and/or --group GROUP")
        raise typer.Exit(2)
    if not reason.strip():
        err_console.print("say why: --reason TEXT (kept with the record)")
        raise typer.Exit(2)
    settings = cli_settings()
    with _open(settings) as store:
        letters = DeadLetters(store)
        try:
            wanted = _resolve(letters, ids, group)
            done = letters.dismiss([r.id for r in wanted], by=_actor(), note=reason.strip())
        except ThunderlineError as exc:
            raise _fail(exc) from exc
    stdout_console().print(f"dismissed {len(done)} record(s)")
    if not done:
        raise typer.Exit(1)


@dlq_app.command("purge")
def dlq_purge(
    older_than: Annotated[
        str,
        typer.Option("--older-than", help="Age of the records to delete: 90s, 15m, 12h, 30d, 2w."),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say how many would go; delete nothing.")
    ] = False,
) -> None:
    """Delete closed records (replayed, resolved, dismissed) older than --older-than.

    A record's age counts from its creation; open records are never deleted.
    """
    try:
        seconds = parse_duration(older_than)
    except ValueError as exc:
        err_console.print(str(exc))
        raise typer.Exit(2) from exc
    settings = cli_settings()
    with _open(settings) as store:
        try:
            found = DeadLetters(store).purge(seconds, dry_run=dry_run)
        except ThunderlineError as exc:
            raise _fail(exc) from exc
    total = sum(found.values())
    detail = ", ".join(f"{n} {status}" for status, n in sorted(found.items()))
    verb = "would delete" if dry_run else "deleted"
    stdout_console().print(
        f"{verb} {total} closed record(s) older than {older_than}"
        + (f" ({detail})" if detail else "")
    )
