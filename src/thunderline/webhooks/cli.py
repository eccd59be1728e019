"""``thunderline webhooks add | tag | list | pause | resume | run | deliveries``."""

from __future__ import annotations

import json
import signal
import threading
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from thunderline import names
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ThunderlineError
from thunderline.webhooks.core import TRIGGER_HELP, Webhooks

webhooks_app = typer.Typer(
    help="Rules and webhooks: signed CloudEvents (or a tag) for ingested, failed, reprocessed, "
    "label-, entity- and query-matched artifacts.",
    no_args_is_help=True,
)
err_console = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]


def _open() -> Webhooks:
    try:
        return Webhooks(cli_settings())
    except ThunderlineError as exc:
        err_console.print(f"[red]cannot open the webhook tables:[/] {escape(str(exc))}")
        raise typer.Exit(2) from exc


def _fail(exc: ThunderlineError) -> typer.Exit:
    err_console.print(f"[red]{exc.reason}:[/] {escape(names.shown(str(exc)))}")
    return typer.Exit(1)


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives the POSTs.")],
    on: Annotated[list[str], typer.Option("--on", help=f"Trigger: {TRIGGER_HELP} (repeat).")],
    secret: Annotated[
        str | None, typer.Option(help="HMAC secret (default: a new random one, printed once).")
    ] = None,
) -> None:
    """Add an endpoint; events recorded from now on are delivered to it."""
    with _open() as hooks:
        try:
            endpoint = hooks.add(url, on, secret)
        except ThunderlineError as exc:
            raise _fail(exc) from exc
    print(json.dumps(endpoint.to_json_dict(show_secret=True)))


@webhooks_app.command("tag")
def tag(
    name: Annotated[str, typer.Argument(help="The tag to put on matching voxels.")],
    on: Annotated[list[str], typer.Option("--on", help=f"Trigger: {TRIGGER_HELP} (repeat).")],
) -> None:
    """Add a rule that tags each voxel its triggers match (from now on; no request is sent).

    The tags show in `voxels results`, `GET /v1/voxels/{id}/results` and the console.
    """
    with _open() as hooks:
        try:
            rule = hooks.add("", on, action=f"tag:{name}")
        except ThunderlineError as exc:
            raise _fail(exc) from exc
    print(json.dumps(rule.to_json_dict()))


@webhooks_app.command("list")
def list_endpoints(as_json: JsonOpt = False) -> None:
    """Every endpoint (secrets masked)."""
    with _open() as hooks:
        endpoints = hooks.endpoints()
    if as_json:
        for endpoint in endpoints:
            print(json.dumps(endpoint.to_json_dict()))
        return
    table = Table(title="Rules and webhooks")
    for column in ("id", "action", "triggers", "state"):
        table.add_column(column, overflow="fold")
    for e in endpoints:
        state = "active" if e.active else "paused"
        action = f"POST {e.url}" if e.action == "webhook" else e.action
        table.add_row(e.id, escape(action), escape(", ".join(e.triggers)), state)
    stdout_console().print(table)


@webhooks_app.command("pause")
def pause(endpoint_id: str) -> None:
    """Stop delivering to an endpoint (events keep being considered when it is resumed)."""
    with _open() as hooks:
        if not hooks.set_active(endpoint_id, False):
            err_console.print(f"no webhook {endpoint_id}")
            raise typer.Exit(1)


@webhooks_app.command("resume")
def resume(endpoint_id: str) -> None:
    """Deliver to a paused endpoint again."""
    with _open() as hooks:
        if not hooks.set_active(endpoint_id, True):
            err_console.print(f"no webhook {endpoint_id}")
            raise typer.Exit(1)


@webhooks_app.command("run")
def run(
    interval: Annotated[float, typer.Option(help="Seconds between rounds.", min=0.05)] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="One round, then exit.")] = False,
) -> None:
    """Run the dispatcher: match new outcomes to rules, deliver what is due, retry with backoff.

    It runs until Ctrl-C or SIGTERM; several dispatchers may share a database.
    """
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _open() as hooks:
        try:
            while True:
                enqueued, attempted = hooks.run_once()
                if once or stop.is_set():
                    if once:
                        print(json.dumps({"enqueued": enqueued, "attempted": attempted}))
                    return
                stop.wait(interval)
        except KeyboardInterrupt:
            return
        except ThunderlineError as exc:
            raise _fail(exc) from exc


@webhooks_app.command("deliveries")
def deliveries(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint id.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered or failed.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The delivery log: each delivery with every attempt (status code or error, duration)."""
    with _open() as hooks:
        items = hooks.deliveries(endpoint_id=endpoint, status=status, limit=limit)
    if as_json:
        for item in items:
            print(json.dumps(item))
        return
    table = Table(title="Webhook deliveries")
    for column in ("event", "type", "status", "attempts", "last"):
        table.add_column(column, overflow="fold")
    for item in items:
        last = item["attempt_log"][-1] if item["attempt_log"] else {}
        shown = str(last.get("status_code") or last.get("error") or "-")
        table.add_row(
            item["event_id"], item["event_type"], item["status"], str(item["attempts"]), shown
        )
    stdout_console().print(table)
