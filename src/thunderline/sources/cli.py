"""``thunderline sync``, ``thunderline watch`` and ``thunderline sources …`` (the ledger)."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from thunderline import names
from thunderline.config import Settings, mask_secrets
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ThunderlineError
from thunderline.sources.ledger import Ledger
from thunderline.sources.runner import sync_once, watch
from thunderline.sources.scan import SourceUri, parse_source
from thunderline.sources.sync import PassReport

sources_app = typer.Typer(
    help="The source ledger: roots kept in step by sync/watch, their entries, pause/resume.",
    no_args_is_help=True,
)
err_console = Console(stderr=True)

SourceArg = Annotated[str, typer.Argument(help="A folder, file:// URI or s3://bucket/prefix.")]
BusOpt = Annotated[
    str | None,
    typer.Option("--bus", help="Publish to the RabbitMQ workers (amqp://…), as ingest --bus."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per pass.")]


def _setup(given: str, bus: str | None) -> tuple[Settings, SourceUri]:
    settings = cli_settings()
    if bus is not None:
        settings = settings.model_copy(update={"bus_url": bus})
    try:
        return settings, parse_source(given)
    except ThunderlineError as exc:
        err_console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from exc


def _fail(what: str, exc: ThunderlineError) -> typer.Exit:
    err_console.print(f"[red]{what} failed:[/] {escape(mask_secrets(names.shown(str(exc))))}")
    return typer.Exit(1)


def _print_pass(report: PassReport, as_json: bool) -> None:
    if as_json:
        print(names.dumps(report.to_json_dict()), flush=True)
        return
    parts = [
        f"{name} {getattr(report, name)}"
        for name in (
            "seen",
            "unchanged",
            "new",
            "changed",
            "touched",
            "resumed",
            "deleted",
            "settling",
            "voxels",
            "linked",
            "dlq",
        )
        if getattr(report, name) or name == "seen"
    ]
    stdout_console().print(
        f"[bold]{escape(names.shown(report.root))}[/] "
        + ", ".join(parts)
        + f" ({report.wall_s:.2f} s)"
    )


def sync(source: SourceArg, bus: BusOpt = None, as_json: JsonOpt = False) -> None:
    """One pass over a folder or bucket prefix: ingest what is new or changed, record deletions.

    An unchanged entry is not read. A file changed less than TL_SOURCE_SETTLE_S ago is left for
    the next pass. Exit 0 when the pass ran (dead-lettered entries are counted, not fatal).
    """
    settings, parsed = _setup(source, bus)
    try:
        report = asyncio.run(sync_once(settings, parsed))
    except ThunderlineError as exc:
        raise _fail("sync", exc) from exc
    _print_pass(report, as_json)


def watch_cmd(source: SourceArg, bus: BusOpt = None, as_json: JsonOpt = False) -> None:
    """Keep a folder or a bucket prefix in step until interrupted.

    A folder is watched with inotify, with polling every TL_SOURCE_POLL_INTERVAL_S; a bucket
    prefix is polled. Ctrl-C or SIGTERM end it cleanly.
    """
    settings, parsed = _setup(source, bus)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        printed = [False]

        def on_pass(report: PassReport) -> None:
            quiet = report.unchanged == report.seen and not (report.deleted or report.settling)
            if as_json or not printed[0] or not quiet:  # a human sees the passes that did work
                _print_pass(report, as_json)
                printed[0] = True

        await watch(settings, parsed, stop=stop, on_pass=on_pass)

    try:
        asyncio.run(run())
    except ThunderlineError as exc:
        raise _fail("watch", exc) from exc


@sources_app.command("list")
def list_roots(as_json: JsonOpt = False) -> None:
    """Every source root with its state (active/paused), entry counts and last pass."""
    settings = cli_settings()
    try:
        with Ledger(settings) as ledger:
            rows = [(root, ledger.counts(root.uri)) for root in ledger.roots()]
    except ThunderlineError as exc:
        raise _fail("sources list", exc) from exc
    if as_json:
        for root, counts in rows:
            print(names.dumps({**root.to_json_dict(), "entries": counts}))
        return
    table = Table(title="Sources")
    for column in ("source", "state", "entries", "last pass"):
        table.add_column(column)
    for root, counts in rows:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"
        last = root.last_summary or {}
        table.add_row(
            escape(names.shown(root.uri)),
            "paused" if root.paused else "active",
            shown,
            f"seen {last.get('seen', '-')}, new {last.get('new', '-')}" if last else "-",
        )
    stdout_console().print(table)


@sources_app.command("entries")
def list_entries(
    source: SourceArg,
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    versions: Annotated[
        bool, typer.Option("--versions", help="Every version, not only the current.")
    ] = False,
    limit: Annotated[int, typer.Option(min=1)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """The ledger entries of one source root (current versions unless --versions)."""
    settings = cli_settings()
    uri = parse_source(source).uri
    try:
        with Ledger(settings) as ledger:
            entries = ledger.entries(uri, state=state, current_only=not versions, limit=limit)
    except ThunderlineError as exc:
        raise _fail("sources entries", exc) from exc
    if as_json:
        for entry in entries:
            print(names.dumps(entry.to_json_dict()))
        return
    table = Table(title=names.shown(uri))
    for column in ("key", "v", "state", "outcome", "voxel", "sha256"):
        table.add_column(column)
    for e in entries:
        table.add_row(
            escape(names.shown(e.key)),
            str(e.version),
            e.state,
            e.outcome or "-",
            (e.voxel_id or "-")[:8],
            (e.content_sha256 or "-")[:12],
        )
    stdout_console().print(table)


def _set_paused(source: str, paused: bool) -> None:
    settings = cli_settings()
    uri = parse_source(source).uri
    try:
        with Ledger(settings) as ledger:
            ledger.ensure_root(uri)
            ledger.set_paused(uri, paused)
    except ThunderlineError as exc:
        raise _fail("sources", exc) from exc
    stdout_console().print(f"{escape(names.shown(uri))}: {'paused' if paused else 'active'}")


@sources_app.command("pause")
def pause(source: SourceArg) -> None:
    """Pause a root: a running ``watch`` skips its passes until it is resumed."""
    _set_paused(source, True)


@sources_app.command("resume")
def resume(source: SourceArg) -> None:
    """Resume a paused root."""
    _set_paused(source, False)
