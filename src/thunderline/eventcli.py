"""``thunderline events``: the event contracts (JSON Schema of every event type's data)."""

from __future__ import annotations

import json
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import typer
from pydantic import BaseModel

from thunderline.eventdata import REGISTRY, DlqRecord, schemas
from thunderline.events import DLQ_PREFIX
from thunderline.report import ArtifactRecord

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


# ---- docs/EVENTS.md tables ---------------------------------------------------------------------
def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        return _type_name(args[0])
    if origin in (Union, UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(_type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


def model_table(model: type[BaseModel]) -> list[str]:
    """A markdown table of a model's fields: name, type, required, description."""
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        required = "yes" if info.is_required() else "no"
        lines.append(
            f"| `{name}` | {_type_name(info.annotation)} | {required} | "
            f"{_one_line(info.description)} |"
        )
    return lines


def _parts(model: type[BaseModel], seen: dict[str, type[BaseModel]]) -> None:
    for info in model.model_fields.values():
        stack: list[Any] = [info.annotation]
        while stack:
            current = stack.pop()
            stack.extend(get_args(current))
            if not (isinstance(current, type) and issubclass(current, BaseModel)):
                continue
            if current.__name__ not in seen:
                seen[current.__name__] = current
                _parts(current, seen)


def events_markdown() -> str:
    """The generated part of docs/EVENTS.md: one table per event type, its parts, the record."""
    out: list[str] = ["## Event types", ""]
    parts: dict[str, type[BaseModel]] = {}
    entries: list[tuple[str, type[BaseModel]]] = [
        *sorted(REGISTRY.items()),
        (f"{DLQ_PREFIX}*", DlqRecord),
    ]
    for event_type, model in entries:
        out += [f"### `{event_type}`: {model.__name__}", "", _one_line(model.__doc__), ""]
        out += [*model_table(model), ""]
        _parts(model, parts)
    out += ["## Parts", ""]
    for name in sorted(parts):
        model = parts[name]
        out += [f"### {name}", "", _one_line(model.__doc__), "", *model_table(model), ""]
    out += ["## The `--json` record (`thunderline ingest --json`)", ""]
    out += [_one_line(ArtifactRecord.__doc__), "", *model_table(ArtifactRecord), ""]
    return "\n".join(out)


@events_app.command("docs")
def events_docs() -> None:
    """Print the generated tables of docs/EVENTS.md (event types, parts, the --json record)."""
    print(events_markdown(), end="")
