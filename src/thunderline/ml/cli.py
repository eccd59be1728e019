"""``thunderline models``: list the registry, verify checksums, hash a model file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from thunderline.config import Settings
from thunderline.console import cli_settings, stdout_console
from thunderline.errors import ThunderlineError
from thunderline.ml.registry import ModelRegistry, file_sha256

models_app = typer.Typer(
    help="The ONNX model registry: list, verify checksums, hash a file.", no_args_is_help=True
)
_err = Console(stderr=True)


def _registry(settings: Settings) -> ModelRegistry:
    try:
        registry = ModelRegistry.from_settings(settings)
    except ThunderlineError as exc:
        _err.print(f"[red]registry error:[/] {exc}")
        raise typer.Exit(2) from exc
    if not registry.exists:
        _err.print(f"[red]no model registry at[/] {registry.registry_file}")
        raise typer.Exit(2)
    return registry


@models_app.command("list")
def list_models() -> None:
    """The registered models: name, version, kind, input shape, preload, checksum, file."""
    registry = _registry(cli_settings())
    table = Table(title=f"models ({registry.registry_file})")
    for column in ("name", "version", "kind", "input", "preload", "sha256", "file"):
        table.add_column(column, overflow="fold")
    for entry in registry.list_models():
        path = registry.path_of(entry)
        table.add_row(
            entry.name,
            entry.version,
            entry.kind,
            escape("[" + ", ".join(str(d) for d in entry.input_shape) + "]"),
            "yes" if entry.preload else "no",
            (entry.sha256 or "-")[:16],
            str(path) if path.is_file() else f"[red]missing[/] {path}",
        )
    stdout_console().print(table)


@models_app.command("verify")
def verify(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to check (default all).")
    ] = None,
) -> None:
    """Re-hash the model files and compare with the registry; exit 1 on any problem."""
    registry = _registry(cli_settings())
    try:
        results = registry.verify(names or None)
    except ThunderlineError as exc:
        _err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    table = Table(title="model checksums")
    for column in ("name", "status", "expected", "actual", "detail"):
        table.add_column(column, overflow="fold")
    colours = {"ok": "green", "untrusted": "yellow"}
    for r in results:
        colour = colours.get(r.status, "red")
        table.add_row(
            r.name,
            f"[{colour}]{r.status}[/]",
            (r.expected or "-")[:16],
            (r.actual or "-")[:16],
            r.detail,
        )
    stdout_console().print(table)
    if any(r.status != "ok" for r in results):
        raise typer.Exit(1)


@models_app.command("checksum")
def checksum(path: Annotated[Path, typer.Argument(help="A model file.")]) -> None:
    """Print a file's SHA-256 (the value for its registry ``sha256``)."""
    if not path.is_file():
        _err.print(f"[red]not a file:[/] {path}")
        raise typer.Exit(2)
    digest = file_sha256(path)
    print(f"{digest}  {path}")
