"""``thunderline models add``: a user's model serving after one command.

:func:`add_model` takes a Keras 3 ``.keras`` file or an ``.onnx`` file and:

1. makes the model folder ``<model dir>/<name>/`` (refused if the name or folder exists);
2. ``.keras``: converts it (``onnx/model.onnx``, the Keras file kept in ``keras/``) and
   validates ONNX against Keras (``VAL_REPORT.json``; a FAIL stops here);
   ``.onnx``: copies it to ``onnx/model.onnx``;
3. loads the ONNX file as the registry would (external data must stay in the folder) and runs
   the health probe, so a model that cannot run is refused now, not at the first artifact;
4. derives the entry from the model where it can: ``input_shape`` (symbolic batch as
   ``"batch"``), ``kind`` (rank 4: image, rank 2: text), ``layout`` (channels last when the
   last dimension is 1 or 3), ``mean``/``std`` per channel, labels from the file's metadata;
5. removes group/other write permission, writes ``checksums.txt`` and signs the folder with
   the key given (``--key``; the key is only read, never copied). The key the service
   verifies with (``TL_MODEL_PUBLIC_KEY``, outside the model folder, default the maintainers'
   key shipped in the package) must verify the signature, else nothing is added;
6. appends the entry (with ``applies_to``: the Magika labels or groups it serves) to
   ``registry.toml`` atomically and checks it with :meth:`ModelRegistry.verify`.

Any failure removes what this call created (folder, entry) and raises a typed error. A running
service re-reads ``registry.toml`` when it changes (:meth:`ModelRegistry.refresh`), so the next
artifact of those labels goes to the new model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from thunderline.config import Settings
from thunderline.errors import ThunderlineError
from thunderline.ml.errors import ModelLoadError, ModelSignatureError
from thunderline.ml.model import OnnxModel
from thunderline.ml.registry import REGISTRY_FILE, ModelRegistry, check_external_data
from thunderline.ml.trust import SHIPPED_PUBLIC_KEY, file_sha256, sign_folder, verify_signature

ONNX_FILE = Path("onnx") / "model.onnx"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
REGISTRY_HEADER = (
    "# Thunderline model registry (TL_ONNX_MODEL_DIR). Paths are relative to this folder.\n"
    "# `thunderline models add` writes entries; after a hand edit, refresh sha256 with\n"
    "# `thunderline models checksum PATH` and re-sign the folder.\n"
)


class ModelAddError(ThunderlineError):
    """The model could not be added.

    ``usage``: the request itself is wrong (name taken, no such file, missing option);
    otherwise the model failed (validation, probe, signature).
    """

    reason = "model_add"

    def __init__(
        self, message: str, *, usage: bool = False, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.usage = usage


@dataclass
class AddRequest:
    """What ``models add`` was asked to do (``None``: derive from the model)."""

    source: Path
    name: str
    applies_to: list[str]
    key: Path | None
    kind: str | None = None
    labels: list[str] | None = None
    version: str = "1.0.0"
    layout: str | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    description: str = ""
    preload: bool = False
    opset: int = 17


@dataclass
class AddResult:
    """What ``models add`` did: the registry entry written, and the validation report."""

    name: str
    folder: Path
    entry: dict[str, Any]
    converted: bool
    validation: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def toml_value(value: Any) -> str:
    """A TOML value for a str, bool, int, float or a list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def toml_entry(entry: dict[str, Any]) -> str:
    """One ``[[models]]`` table of ``registry.toml`` as TOML text."""
    lines = ["[[models]]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in entry.items() if value is not None]
    return "\n".join(lines) + "\n"


def _write_atomic(path: Path, text: str) -> None:
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=".registry-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _no_group_write(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(stat.S_IMODE(path.stat().st_mode) & ~(stat.S_IWGRP | stat.S_IWOTH))


def _shape_entry(model: OnnxModel, request: AddRequest) -> dict[str, Any]:
    """Kind, input shape, layout and normalisation from the model (unless given)."""
    if len(model.spec.inputs) != 1:
        raise ModelAddError(
            f"{request.source}: the model has {len(model.spec.inputs)} inputs; the infer stage "
            "feeds exactly one (an image or a token sequence)",
            usage=True,
        )
    spec = model.spec.inputs[0]
    shape: list[int | str] = [d if isinstance(d, int) else "batch" for d in spec.shape]
    kind = request.kind or {4: "image", 2: "text"}.get(len(shape))
    if kind not in ("image", "text"):
        raise ModelAddError(
            f"{request.source}: cannot tell the kind from input shape {shape} (give --kind)",
            usage=True,
        )
    out: dict[str, Any] = {"kind": kind, "input_shape": shape}
    if kind == "image":
        if len(shape) != 4:
            raise ModelAddError(
                f"{request.source}: an image model needs a rank-4 input: {shape}", usage=True
            )
        layout = (request.layout or ("NHWC" if shape[-1] in (1, 3) else "NCHW")).upper()
        channels = shape[-1] if layout == "NHWC" else shape[1]
        if channels not in (1, 3):
            raise ModelAddError(
                f"{request.source}: image channels must be 1 or 3: {shape}", usage=True
            )
        out["layout"] = layout
        out["mean"] = request.mean or [0.0] * int(channels)
        out["std"] = request.std or [1.0] * int(channels)
    else:
        out["tokenizer"] = "utf8_bytes"
    return out


def _prepare_folder(request: AddRequest, folder: Path) -> tuple[bool, dict[str, Any] | None]:
    """Convert or copy the model into ``folder``; (converted, validation report)."""
    suffix = request.source.suffix.lower()
    if suffix == ".keras":
        from thunderline.convert import convert_keras, validate_folder

        convert_keras(
            request.source, folder, opset=request.opset, name=request.name, labels=request.labels
        )
        report = validate_folder(folder, name=request.name)
        if not report.passed:
            raise ModelAddError(
                f"{request.source}: ONNX does not match Keras (VAL_REPORT.json: "
                f"max_abs_diff={report.max_abs_diff:.3g}, top1={report.top1_agreement:.4f})",
                details=report.to_dict(),
            )
        return True, report.to_dict()
    if suffix == ".onnx":
        (folder / ONNX_FILE).parent.mkdir(parents=True)
        shutil.copyfile(request.source, folder / ONNX_FILE)
        return False, None
    raise ModelAddError(f"{request.source}: give a .keras or an .onnx file", usage=True)


def add_model(settings: Settings, request: AddRequest) -> AddResult:
    """Add, sign and register one model (see the module doc); undone on any failure."""
    model_dir = Path(settings.onnx.model_dir)
    if not _NAME.match(request.name):
        raise ModelAddError(
            f"model name {request.name!r}: lower-case letters, digits, '_' and '-' (max 63)",
            usage=True,
        )
    if not request.source.is_file():
        raise ModelAddError(f"{request.source}: no such file", usage=True)
    if not request.applies_to:
        raise ModelAddError(
            "give --applies-to: the Magika labels or groups the model serves", usage=True
        )
    if request.key is None and settings.model.signature_required:
        raise ModelAddError(
            "give --key PATH (EC P-256 private key): models are signed "
            "(TL_MODEL_SIGNATURE_REQUIRED=true)",
            usage=True,
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    registry_file = model_dir / REGISTRY_FILE
    existing = ModelRegistry(model_dir, registry_file=registry_file)
    if request.name in {e.name for e in existing.list_models()}:
        raise ModelAddError(f"model {request.name!r} is already in {registry_file}", usage=True)
    folder = model_dir / request.name
    if folder.exists():
        raise ModelAddError(
            f"{folder} already exists: choose another --name or remove it", usage=True
        )
    public_key = (
        Path(settings.model.public_key) if settings.model.public_key else SHIPPED_PUBLIC_KEY
    )
    before = registry_file.read_text(encoding="utf-8") if registry_file.exists() else None
    try:
        folder.mkdir()
        converted, validation = _prepare_folder(request, folder)
        onnx_path = folder / ONNX_FILE
        data = onnx_path.read_bytes()
        proto = onnx.load_model_from_string(data)
        check_external_data(proto, onnx_path)
        model = OnnxModel.from_bytes(data, name=request.name, source=str(onnx_path), proto=proto)
        try:
            model.probe()  # a model that cannot run is refused now, not at the first artifact
        except ThunderlineError as exc:
            raise ModelLoadError(f"{request.source}: the model does not run: {exc}") from exc
        labels = request.labels or model.labels
        entry: dict[str, Any] = {
            "name": request.name,
            "path": f"{request.name}/{ONNX_FILE.as_posix()}",
            "version": request.version,
            **_shape_entry(model, request),
            "preload": request.preload,
            "applies_to": [label.strip().lower() for label in request.applies_to],
            "description": request.description
            or f"Added by `thunderline models add` from {request.source.name}.",
            "sha256": file_sha256(onnx_path),
            "labels": list(labels),
        }
        model.close()
        _no_group_write(folder)
        notes: list[str] = []
        if request.key is not None:
            sign_folder(folder, request.key)
            try:
                verify_signature(folder, public_key)
            except ModelSignatureError as exc:
                raise ModelAddError(
                    f"the signature made with {request.key} does not verify with the public key "
                    f"the service uses ({public_key}): sign with the maintainers' key, or set "
                    "TL_MODEL_PUBLIC_KEY to your key's public half (outside the model folder; "
                    "`openssl ec -in KEY -pubout -out KEY.pub`)",
                    details={"key": str(request.key), "public_key": str(public_key)},
                ) from exc
        else:
            from thunderline.ml.trust import write_checksums

            write_checksums(folder)
        _no_group_write(folder)
        text = (before if before is not None else REGISTRY_HEADER).rstrip("\n") + "\n\n"
        _write_atomic(registry_file, text + toml_entry(entry))
        registry = ModelRegistry.from_settings(settings)
        (result,) = registry.verify([request.name])
        if result.status != "ok":
            raise ModelAddError(
                f"model {request.name} does not verify after adding: {result.status} "
                f"({result.detail})"
            )
        return AddResult(request.name, folder, entry, converted, validation, notes)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        if before is not None:
            _write_atomic(registry_file, before)
        else:
            registry_file.unlink(missing_ok=True)
        raise


__all__ = ["AddRequest", "AddResult", "ModelAddError", "add_model", "toml_entry"]
