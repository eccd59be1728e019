"""``thunderline events``: the event contracts (JSON Schema of every event type's data)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

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


def _is_part(kind: Any) -> bool:
    """A pydantic model, or a dataclass pydantic validates (the extraction's value types)."""
    return isinstance(kind, type) and (
        issubclass(kind, BaseModel) or dataclasses.is_dataclass(kind)
    )


def _fields(model: type[Any]) -> list[tuple[str, Any, bool, str | None]]:
    """(name, type, required, description) of each field of a model or a dataclass."""
    if issubclass(model, BaseModel):
        return [
            (name, info.annotation, info.is_required(), info.description)
            for name, info in model.model_fields.items()
        ]
    hints = get_type_hints(model, include_extras=True)
    out: list[tuple[str, Any, bool, str | None]] = []
    for item in dataclasses.fields(model):
        hint = hints[item.name]
        meta = get_args(hint)[1:] if get_origin(hint) is Annotated else ()
        described = [m.description for m in meta if isinstance(m, FieldInfo)]
        required = item.default is dataclasses.MISSING and (
            item.default_factory is dataclasses.MISSING
        )
        out.append((item.name, hint, required, described[0] if described else None))
    return out


def model_table(model: type[Any]) -> list[str]:
    """A markdown table of a model's fields: name, type, required, description."""
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, annotation, required, description in _fields(model):
        lines.append(
            f"| `{name}` | {_type_name(annotation)} | {'yes' if required else 'no'} | "
            f"{_one_line(description)} |"
        )
    return lines


def _parts(model: type[Any], seen: dict[str, type[Any]]) -> None:
    for _name, annotation, _required, _description in _fields(model):
        stack: list[Any] = [annotation]
        while stack:
            current = stack.pop()
            stack.extend(get_args(current))
            if not _is_part(current):
                continue
            if current.__name__ not in seen:
                seen[current.__name__] = current
                _parts(current, seen)


def events_markdown() -> str:
    """The generated part of docs/EVENTS.md: one table per event type, its parts, the record."""
    out: list[str] = ["## Event types", ""]
    parts: dict[str, type[Any]] = {}
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


GENERATED_START = "<!-- generated by `thunderline events docs`"
GENERATED_END = "<!-- end of generated tables -->"


def replace_generated(text: str, tables: str) -> str:
    """``text`` with the part between the generated-section markers replaced by ``tables``."""
    head, marker, rest = text.partition(GENERATED_START)
    if not marker or GENERATED_END not in rest:
        raise ValueError("the generated-section markers are missing")
    marker_line, _, body = rest.partition("\n")
    tail = body.split(GENERATED_END, 1)[1]
    return f"{head}{marker}{marker_line}\n{tables}{GENERATED_END}{tail}"


@events_app.command("docs")
def events_docs(
    write: Annotated[
        Path | None, typer.Option(help="Update the generated tables in this file (EVENTS.md).")
    ] = None,
) -> None:
    """Print the generated tables of docs/EVENTS.md (event types, parts, the --json record)."""
    tables = events_markdown()
    if write is None:
        print(tables, end="")
        return
    write.write_text(replace_generated(write.read_text("utf-8"), tables), "utf-8")
