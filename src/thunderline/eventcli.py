"""``thunderline events``: the event contracts (JSON Schema of every event type's data)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from thunderline.eventdata import schemas

events_app = typer.Typer(help="Event types and their data schemas.", no_args_is_help=True)


@events_app.command("schema")
def events_schema(
    event_type: Annotated[
        str | None, typer.Argument(help="One event type (default: every type).")
    ] = None,
) -> None:
    """Print the JSON Schema of every event type's ``data`` (an object keyed by type)."""
    found = schemas()
    if event_type is not None:
        if event_type not in found:
            typer.echo(f"unknown event type {event_type!r}; known: {', '.join(found)}", err=True)
            raise typer.Exit(2)
        found = {event_type: found[event_type]}
    print(json.dumps(found, indent=2, sort_keys=True))


@events_app.command("types")
def events_types() -> None:
    """List the event types and the model of each one's data."""
    for name, schema in schemas().items():
        print(f"{name}\t{schema.get('title', '')}")
