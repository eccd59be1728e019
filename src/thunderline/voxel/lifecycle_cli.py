"""``thunderline voxels delete | retain | deletions | duplicates`` (see :mod:`.lifecycle`)."""

from __future__ import annotations

import getpass
import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from thunderline import names
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ThunderlineError
from thunderline.voxel import lifecycle
from thunderline.voxel.store import VoxelStore

err_console = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the audit record).")]


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (a container)
        return "cli"


def _fail(exc: ThunderlineError) -> typer.Exit:
    err_console.print(f"[red]{exc.reason}:[/] {escape(names.shown(str(exc)))}")
    return typer.Exit(1)


def _when(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="seconds")


def _print_deletions(records: list[lifecycle.Deletion], as_json: bool, title: str) -> None:
    if as_json:
        for record in records:
            print(names.dumps(record.to_json_dict()))
        return
    table = Table(title=title)
    for column in ("voxel", "source", "label", "payload removed", "by", "when", "why"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(
            r.voxel_id,
            escape(names.shown(r.source)),
            r.label or "-",
            "yes" if r.payload_removed else "no (still referenced)",
            escape(r.actor),
            _when(r.deleted_unix),
            escape(names.shown(r.reason)),
        )
    stdout_console().print(table)


def delete(
    voxel_ids: Annotated[list[str], typer.Argument(help="Voxel ids or unique prefixes.")],
    with_descendants: Annotated[
        bool, typer.Option("--with-descendants", help="Delete each voxel's whole subtree too.")
    ] = False,
    reason: ReasonOpt = "deleted by hand",
    as_json: JsonOpt = False,
) -> None:
    """Delete voxels (audited: who, when, what, why); collect payloads nothing references."""
    settings = cli_settings()
    try:
        with VoxelStore(settings) as store:
            records = lifecycle.delete_voxels(
                store, voxel_ids, actor=_actor(), reason=reason, with_descendants=with_descendants
            )
    except ThunderlineError as exc:
        raise _fail(exc) from exc
    _print_deletions(records, as_json, f"{len(records)} voxel(s) deleted")


def retain(
    older_than: Annotated[
        str | None, typer.Option(help="Delete voxels older than this (30d, 12h, 2w …).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Only voxels of this Magika label.")] = None,
    source_prefix: Annotated[
        str | None, typer.Option(help="Only voxels whose source starts with this.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, delete nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Apply a retention rule: delete the voxels matching every given condition.

    Archive members go with their archive. Each deletion is audited with the rule as its reason.
    """
    from thunderline.voxel.cli import parse_since

    if older_than is None and label is None and source_prefix is None:
        err_console.print("give at least one rule: --older-than, --label or --source-prefix")
        raise typer.Exit(2)
    settings = cli_settings()
    older_s = None
    if older_than is not None:
        older_s = (datetime.now(UTC) - parse_since(older_than)).total_seconds()
    rule = {"older_than": older_than, "label": label, "source_prefix": source_prefix}
    try:
        with VoxelStore(settings) as store:
            ids = lifecycle.retention_ids(
                store, older_than_s=older_s, label=label, source_prefix=source_prefix
            )
            if dry_run:
                for voxel_id in ids:
                    print(json.dumps({"voxel_id": voxel_id}) if as_json else voxel_id)
                err_console.print(f"{len(ids)} voxel(s) match (dry run: nothing deleted)")
                return
            done: set[str] = set()
            records: list[lifecycle.Deletion] = []
            for voxel_id in ids:
                if voxel_id in done:
                    continue  # already gone with its parent
                batch = lifecycle.delete_voxels(
                    store,
                    [voxel_id],
                    actor=_actor(),
                    reason=f"retention {json.dumps(rule)}",
                    with_descendants=True,
                )
                done.update(r.voxel_id for r in batch)
                records.extend(batch)
    except ThunderlineError as exc:
        raise _fail(exc) from exc
    _print_deletions(records, as_json, f"retention: {len(records)} voxel(s) deleted")


def deletions(limit: Annotated[int, typer.Option(min=1)] = 50, as_json: JsonOpt = False) -> None:
    """The deletion audit, newest first."""
    settings = cli_settings()
    try:
        with VoxelStore(settings) as store:
            records = lifecycle.deletions(store, limit=limit)
    except ThunderlineError as exc:
        raise _fail(exc) from exc
    _print_deletions(records, as_json, "Deletion audit")


def duplicates(limit: Annotated[int, typer.Option(min=1)] = 50, as_json: JsonOpt = False) -> None:
    """List content stored more than once, by payload SHA-256.

    Voxels sharing a payload SHA-256 (``flag``/``reprocess``) and source entries linked to an
    existing voxel (``link``).
    """
    settings = cli_settings()
    try:
        with VoxelStore(settings) as store:
            groups = lifecycle.duplicate_groups(store, limit=limit)
    except ThunderlineError as exc:
        raise _fail(exc) from exc
    if as_json:
        for group in groups:
            print(names.dumps(group.to_json_dict()))
        return
    table = Table(title=f"Duplicates (TL_DUPLICATE_POLICY={settings.duplicate_policy})")
    for column in ("sha256", "voxels", "linked", "sources"):
        table.add_column(column, overflow="fold")
    for g in groups:
        table.add_row(
            g.payload_sha256[:16],
            str(len(g.voxel_ids)),
            str(len(set(g.linked_entries)) + len(g.linked_artifacts)),
            escape(names.shown(", ".join(g.sources[:5]))),
        )
    stdout_console().print(table)


def register(app: typer.Typer) -> None:
    """Mount these commands on ``thunderline voxels``."""
    app.command("delete")(delete)
    app.command("retain")(retain)
    app.command("deletions")(deletions)
    app.command("duplicates")(duplicates)
    from thunderline.sources.reprocess_cli import results

    app.command("results")(results)
