"""``thunderline voxels ...``: list, show, lineage, verify and cat stored voxels.

Mounted by the main CLI as the ``voxels`` sub-command (``voxels_app``). Every payload that is
printed or checked is verified first; ``verify`` exits 1 when any voxel fails.
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from thunderline import ids, names
from thunderline.config import Settings
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ThunderlineError
from thunderline.summary import voxel_brief
from thunderline.voxel import lifecycle, lifecycle_cli
from thunderline.voxel.lineage import Edge
from thunderline.voxel.schema import Voxel
from thunderline.voxel.store import VoxelStore
from thunderline.voxel.verify import VoxelCheck

voxels_app = typer.Typer(
    help="Stored voxels: list, show, lineage, verify, cat.", no_args_is_help=True
)
console = stdout_console()
err_console = Console(stderr=True)
_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
ID_HELP = "Voxel id: the short id (as listed), the full id, or a unique part of either end."


def parse_since(value: str, *, now: datetime | None = None) -> datetime:
    """``30m``, ``2h``, ``7d``, ``1w`` (ago) or an ISO 8601 date/time (UTC when naive)."""
    match = _RELATIVE.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), _UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(**{unit: amount})
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r}: use e.g. 30m, 2h, 7d or 2026-01-31T12:00") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _open() -> VoxelStore:
    settings: Settings = cli_settings()
    try:
        return VoxelStore(settings)
    except ThunderlineError as exc:
        err_console.print(f"[red]cannot open the voxel store:[/] {exc}")
        raise typer.Exit(2) from exc


def _fail(exc: ThunderlineError) -> typer.Exit:
    err_console.print(f"[red]{exc.reason}:[/] {exc}")
    return typer.Exit(1)


def _name(voxel: Voxel) -> str:
    """The artifact's name for a table: escapes made visible, no rich markup (names.py)."""
    artifact = voxel.traits.get("artifact") or {}
    return escape(names.shown(str(artifact.get("name") or voxel.source)))


def _node(voxel: Voxel | None, voxel_id: str) -> str:
    if voxel is None:
        return f"[bold]{ids.short(voxel_id)}[/] [red](missing)[/]"
    return (
        f"[bold]{ids.short(voxel.id)}[/] [cyan]{escape(voxel.label or '-')}[/] {_name(voxel)} "
        f"({voxel.payload_size} B)"
    )


@voxels_app.command("list")
def list_voxels(
    label: Annotated[str | None, typer.Option(help="Only this Magika label (any case).")] = None,
    group: Annotated[str | None, typer.Option(help="Only this Magika group (any case).")] = None,
    text: Annotated[
        str | None, typer.Option("--text", "-q", help="Text in an NLP entity (any case).")
    ] = None,
    entity_type: Annotated[
        str | None, typer.Option(help="Has an NLP entity of this type (PERSON, ORG, ...).")
    ] = None,
    model_label: Annotated[
        str | None, typer.Option(help="The inference model's top label (any case).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Newer than: 30m, 2h, 7d or ISO time.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Newest N voxels.")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON line per voxel: its summary.")
    ] = False,
    full: Annotated[
        bool, typer.Option("--full", help="With --json: the whole voxel document.")
    ] = False,
) -> None:
    """The newest voxels: short id, time, label, size, name, parents and correlation id.

    The filters are the API's (``GET /v1/voxels``). ``--json`` prints one summary per line
    (counts, top entities and labels, sizes, ids); ``--json --full`` the whole documents.
    """
    from thunderline.voxel.paging import VoxelFilter

    flt = VoxelFilter(
        label=label,
        group=group,
        since=parse_since(since) if since else None,
        q=text or None,
        entity_type=entity_type,
        model_label=model_label,
    )
    with _open() as store:
        try:
            found, _ = store.page(flt, limit=limit)
            stored = store.count()
        except ThunderlineError as exc:
            raise _fail(exc) from exc
    if as_json:
        for voxel in found:
            doc = (
                voxel.model_dump(mode="json")
                if full
                else voxel_brief(voxel).model_dump(mode="json")
            )
            print(names.dumps(doc), flush=True)  # exact names (names.py)
        return
    table = Table(title=f"voxels ({len(found)} shown, {stored} stored)")
    table.add_column("id", no_wrap=True)
    for column in ("time", "label", "bytes", "name", "parents"):
        table.add_column(column, overflow="fold")
    table.add_column("correlation", no_wrap=True)
    for voxel in found:
        table.add_row(
            ids.short(voxel.id),
            voxel.ts.strftime("%Y-%m-%d %H:%M:%S"),
            escape(voxel.label or "-"),
            str(voxel.payload_size),
            _name(voxel),
            str(len(voxel.lineage.parent_voxel_ids)),
            ids.short(voxel.correlation_id),
        )
    console.print(table)


@voxels_app.command()
def show(voxel_id: Annotated[str, typer.Argument(help=ID_HELP)]) -> None:
    """The whole voxel as JSON (metadata checksum verified)."""
    with _open() as store:
        try:
            voxel = store.get(voxel_id)
            children = sorted({e.child_id for e in store.descendants(voxel.id) if e.depth == 1})
        except ThunderlineError as exc:
            raise _fail(exc) from exc
        doc = voxel.model_dump(mode="json")
        doc["short_id"] = ids.short(voxel.id)
        doc["children"] = children
        print(names.dumps(doc, indent=2))  # exact: control chars and odd bytes as JSON escapes


def _tree(store: VoxelStore, root: Voxel, edges: list[Edge], *, up: bool, title: str) -> Tree:
    links: dict[str, list[str]] = {}
    for edge in edges:
        near, far = (edge.child_id, edge.parent_id) if up else (edge.parent_id, edge.child_id)
        links.setdefault(near, []).append(far)
    cache: dict[str, Voxel | None] = {root.id: root}

    def load(voxel_id: str) -> Voxel | None:
        if voxel_id not in cache:
            try:
                cache[voxel_id] = store.get(voxel_id)
            except ThunderlineError:
                cache[voxel_id] = None
        return cache[voxel_id]

    tree = Tree(f"{title}: {_node(root, root.id)}")
    shown: set[str] = set()

    def grow(branch: Tree, voxel_id: str) -> None:
        for other in sorted(links.get(voxel_id, [])):
            if other in shown:
                branch.add(f"{_node(load(other), other)} [dim](shown above)[/]")
                continue
            shown.add(other)
            grow(branch.add(_node(load(other), other)), other)

    grow(tree, root.id)
    if not links.get(root.id):
        tree.add("[dim](none)[/]")
    return tree


@voxels_app.command()
def lineage(
    voxel_id: Annotated[str, typer.Argument(help=ID_HELP)],
    ancestors: Annotated[bool, typer.Option("--ancestors", help="Only the ancestors.")] = False,
    descendants: Annotated[
        bool, typer.Option("--descendants", help="Only the descendants.")
    ] = False,
) -> None:
    """The voxel's ancestors and/or descendants drawn as a tree."""
    both = not ancestors and not descendants
    with _open() as store:
        try:
            root = store.get(voxel_id)
            if ancestors or both:
                up = store.ancestors(root.id)
                console.print(_tree(store, root, up, up=True, title="ancestors of"))
            if descendants or both:
                down = store.descendants(root.id)
                console.print(_tree(store, root, down, up=False, title="descendants of"))
        except ThunderlineError as exc:
            raise _fail(exc) from exc


def _with_index(store: VoxelStore, results: list[VoxelCheck]) -> list[VoxelCheck]:
    """Add the search index check: a voxel missing from it or indexed stale fails."""
    from thunderline.search.lifecycle import check

    found = {p.voxel_id: p for p in check(store, [r.voxel_id for r in results if r.ok])}
    return [
        VoxelCheck(r.voxel_id, False, found[r.voxel_id].reason, found[r.voxel_id].detail)
        if r.voxel_id in found
        else r
        for r in results
    ]


@voxels_app.command()
def verify(
    voxel_id: Annotated[str | None, typer.Argument(help=ID_HELP)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Verify every stored voxel.")] = False,
) -> None:
    """Check each voxel against its sealed document; report what differs; exit 1 if any fails.

    Checked: the metadata hash, every index column, and every payload copy (inline row and
    object).
    """
    if not all_ and voxel_id is None:
        err_console.print("give a voxel ID or --all")
        raise typer.Exit(2)
    problems: list[str] = []
    with _open() as store:
        if all_:
            results = _with_index(store, list(store.verify_all()))
            try:  # dangling references and orphans (after deletions and retention)
                problems = lifecycle.check_references(store)
            except ThunderlineError as exc:
                raise _fail(exc) from exc
        else:
            assert voxel_id is not None
            try:
                full = store.resolve_id(voxel_id)
            except ThunderlineError as exc:
                raise _fail(exc) from exc
            results = [store.verify(full)]
    bad = [r for r in results if not r.ok]
    for problem in problems:
        err_console.print(f"[red]reference:[/] {escape(names.shown(problem))}")
    if problems and not bad:
        raise typer.Exit(1)
    if bad:
        table = Table(title=f"[red]{len(bad)} of {len(results)} voxels failed verification[/]")
        table.add_column("id", no_wrap=True)
        for column in ("reason", "detail"):
            table.add_column(column, overflow="fold")
        for result in bad:
            table.add_row(
                ids.short(result.voxel_id), result.reason, escape(names.shown(result.detail))
            )
        console.print(table)
        raise typer.Exit(1)
    console.print(
        f"[green]ok[/]: {len(results)} voxel(s) verified "
        "(sealed document, index columns, every payload copy, search index"
        + ("; no dangling reference, no orphan payload)" if all_ else ")")
    )


@voxels_app.command()
def cat(voxel_id: Annotated[str, typer.Argument(help=ID_HELP)]) -> None:
    """Write the payload bytes to stdout, verified first (nothing is written on a mismatch)."""
    with _open() as store:
        out = sys.stdout.buffer
        try:
            store.copy_payload(voxel_id, out)
        except ThunderlineError as exc:
            raise _fail(exc) from exc
        out.flush()


@voxels_app.command()
def text(voxel_id: Annotated[str, typer.Argument(help="Voxel id or unique prefix.")]) -> None:
    """Print the text extracted from the voxel's payload; exit 1 when it has none.

    The text is stored once beside the payload and verified before printing.
    """
    with _open() as store:
        try:
            full = voxel_id if len(voxel_id) == 36 else store.resolve_id(voxel_id)
            found = store.read_text(full)
        except ThunderlineError as exc:
            raise _fail(exc) from exc
    if found is None:
        err_console.print(f"voxel {voxel_id} has no extracted text")
        raise typer.Exit(1)
    out = sys.stdout
    out.write(found if found.endswith("\n") else found + "\n")
    out.flush()


# delete, retain, deletions, duplicates (the voxel lifecycle: audited deletion and retention)
lifecycle_cli.register(voxels_app)
