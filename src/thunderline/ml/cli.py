"""``thunderline models``: add, list, verify, hash, convert, validate and sign models.

Add a model in one command; list, verify (checksums, signature, permissions, external data),
hash, convert a Keras model to ONNX, validate Keras vs ONNX, sign a model folder.
"""

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
from thunderline.ml.registry import ModelRegistry
from thunderline.ml.trust import (
    SIGNATURE_FILE,
    file_sha256,
    model_folder_of,
    sign_folder,
    write_checksums,
)

models_app = typer.Typer(
    help="The ONNX model registry: add, list, verify, checksum, convert, validate, sign.",
    no_args_is_help=True,
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
    """Check every model as a load would, without loading it; exit 1 on any problem.

    Checked: registry SHA-256, checksums.txt, signature, permissions, external data.
    """
    registry = _registry(cli_settings())
    try:
        results = registry.verify(names or None)
    except ThunderlineError as exc:
        _err.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    table = Table(title="model trust: sha256, checksums.txt, signature, permissions, external data")
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


def _fail(exc: BaseException, what: Path | str) -> typer.Exit:
    """Print one clear line (no traceback) and return exit code 2."""
    if isinstance(exc, ThunderlineError):
        _err.print(f"[red]error:[/] {escape(str(exc))}")
    else:
        _err.print(f"[red]error:[/] {escape(str(what))}: {type(exc).__name__}: {escape(str(exc))}")
    return typer.Exit(2)


@models_app.command("convert")
def convert(
    source: Annotated[Path, typer.Argument(help="A Keras 3 .keras model file.")],
    out: Annotated[Path, typer.Option("--out", help="Model folder to write.")],
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    name: Annotated[str | None, typer.Option(help="Model name (default: folder name).")] = None,
    labels: Annotated[
        str | None, typer.Option(help="Comma-separated class labels (ONNX metadata).")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="EC P-256 private key: sign the folder.")] = None,
) -> None:
    """Convert IN.keras to OUT/onnx/model.onnx, validate and checksum it, sign it with --key.

    Validation writes VAL_REPORT.json; checksums.txt is written and, with --key, the folder
    signed. Exit 2 on bad input, 1 on FAIL.
    """
    cli_settings()
    from thunderline.convert import convert_keras, validate_folder

    try:
        summary = convert_keras(
            source,
            out,
            opset=opset,
            name=name,
            labels=[x.strip() for x in labels.split(",")] if labels else None,
        )
        stdout_console().print(escape(summary.line()))
        report = validate_folder(out, name=summary.name)
        if key is not None:
            signature = sign_folder(out, key)
            stdout_console().print(f"signed: {escape(str(signature))}")
        else:
            write_checksums(out)
    except Exception as exc:
        raise _fail(exc, source) from None
    _print_report(report.to_dict(), out / "VAL_REPORT.json")
    if not report.passed:
        raise typer.Exit(1)


def _print_report(report: dict[str, object], path: Path) -> None:
    colour = "green" if report["status"] == "PASS" else "red"
    stdout_console().print(
        f"{report['model']}: [{colour}]{report['status']}[/] max_abs_diff={report['max_abs_diff']:.3g} "
        f"mean_abs_diff={report['mean_abs_diff']:.3g} top1_agreement={report['top1_agreement']:.4f} "
        f"vectors={report['vectors']} tolerance={report['tolerance']} -> {escape(str(path))}"
    )


@models_app.command("validate")
def validate(
    targets: Annotated[
        list[str] | None,
        typer.Argument(help="Registered model names or model folders (default: every model)."),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            help="Write NAME.VAL_REPORT.json here instead of into the (signed) model folder."
        ),
    ] = None,
) -> None:
    """Run seeded vectors and held-out samples through Keras and ONNX Runtime, and compare.

    The held-out samples are the folder's. Writes VAL_REPORT.json. Exit 1 if any model FAILs, 2
    if one cannot be validated.
    """
    settings = cli_settings()
    from thunderline.convert import validate_folder

    folders: list[tuple[str, Path]] = []
    names = targets or []
    registry: ModelRegistry | None = None
    if not names or any(not Path(t).is_dir() for t in names):
        registry = _registry(settings)
    if not names and registry is not None:
        names = [e.name for e in registry.list_models()]
    for target in names:
        if Path(target).is_dir():
            folders.append((Path(target).resolve().name, Path(target)))
            continue
        assert registry is not None
        try:
            entry = registry.entry(target)
        except ThunderlineError as exc:
            raise _fail(exc, target) from None
        folders.append((entry.name, model_folder_of(registry.path_of(entry))))
    failed = False
    for name, folder in folders:
        path = report_dir / f"{name}.VAL_REPORT.json" if report_dir else folder / "VAL_REPORT.json"
        try:
            report = validate_folder(folder, name=name, report_path=path)
        except Exception as exc:
            raise _fail(exc, folder) from None
        _print_report(report.to_dict(), path)
        if report_dir is None and (folder / SIGNATURE_FILE).is_file():
            _err.print(
                f"note: {escape(str(path))} changed inside a signed folder: re-sign it with "
                f"`thunderline models sign {escape(str(folder))} --key K` (or use --report-dir)"
            )
        failed |= not report.passed
    if failed:
        raise typer.Exit(1)


@models_app.command("sign")
def sign(
    folder: Annotated[Path, typer.Argument(help="A model folder (models/<name>).")],
    key: Annotated[Path, typer.Option("--key", help="EC P-256 private key (PEM).")],
) -> None:
    """Write FOLDER/checksums.txt and sign the folder (FOLDER/model.sig) with KEY."""
    cli_settings()
    if not folder.is_dir():
        _err.print(f"[red]error:[/] {escape(str(folder))}: not a folder")
        raise typer.Exit(2)
    try:
        signature = sign_folder(folder, key)
    except Exception as exc:
        raise _fail(exc, folder) from None
    print(f"signed {folder}: {signature}")


def _csv(value: str | None) -> list[str] | None:
    return [x.strip() for x in value.split(",") if x.strip()] if value else None


@models_app.command("add")
def add(
    source: Annotated[Path, typer.Argument(help="A Keras 3 .keras file or an .onnx file.")],
    name: Annotated[str, typer.Option("--name", help="Registry name (lower case, _ and -).")],
    applies_to: Annotated[
        str,
        typer.Option(
            "--applies-to", help="Comma-separated Magika labels or groups it serves (png,jpeg)."
        ),
    ],
    key: Annotated[
        Path | None,
        typer.Option("--key", help="EC P-256 private key (PEM) to sign the model folder with."),
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="`image` or `text` (default: from the input rank).")
    ] = None,
    labels: Annotated[
        str | None, typer.Option(help="Comma-separated class labels (default: the file's).")
    ] = None,
    version: Annotated[str, typer.Option(help="Model version.")] = "1.0.0",
    layout: Annotated[
        str | None, typer.Option(help="Images: NHWC or NCHW (default: from the shape).")
    ] = None,
    description: Annotated[str, typer.Option(help="One line for `models list`.")] = "",
    preload: Annotated[bool, typer.Option("--preload", help="Load at service start.")] = False,
) -> None:
    """Add a model in one command: convert (.keras) and validate, probe, sign, register.

    The model folder is MODEL_DIR/NAME; the entry names the labels it applies to, so the infer
    stage sends those artifacts to it; a running service picks it up at its next artifact.
    Exit 2 on bad input, 1 when validation or signing fails (nothing is left behind).
    """
    settings = cli_settings()
    from thunderline.ml.onboard import AddRequest, ModelAddError, add_model

    request = AddRequest(
        source=source,
        name=name,
        applies_to=_csv(applies_to) or [],
        key=key,
        kind=kind,
        labels=_csv(labels),
        version=version,
        layout=layout,
        description=description,
        preload=preload,
    )
    try:
        result = add_model(settings, request)
    except ModelAddError as exc:
        _err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2 if exc.usage else 1) from None
    except Exception as exc:
        raise _fail(exc, source) from None
    out = stdout_console()
    entry = result.entry
    how = "converted and validated" if result.converted else "copied"
    out.print(
        f"added [bold]{escape(result.name)}[/] ({how}, probed, "
        f"{'signed' if key else 'checksummed'}): {entry['kind']} "
        f"{escape(str(entry['input_shape']))}, applies to {escape(', '.join(entry['applies_to']))}"
    )
    out.print(f"folder: {escape(str(result.folder))}")
    for note in result.notes:
        out.print(f"note: {escape(note)}")
    out.print("a running service uses it from its next artifact of those labels")
