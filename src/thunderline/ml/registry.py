"""The model registry (``registry.toml`` in ``TL_ONNX_MODEL_DIR``) and the untrusted-model gate.

Each ``[[models]]`` entry lists ``name``, ``path`` (relative to the model folder), ``version``,
``kind`` (``image`` or ``text``), ``input_shape``, ``preload``, ``sha256`` and ``labels``
(plus ``layout``, ``mean``, ``std`` for images and ``tokenizer`` for text), and optionally
``applies_to``: the Magika labels or groups the model serves (``thunderline models add``
writes it; the infer stage picks the first entry whose ``applies_to`` names the artifact's
label, then its group, before the ``TL_ONNX_IMAGE_MODEL`` / ``TL_ONNX_TEXT_MODEL`` defaults).
An entry also declares what the model can be trusted on (issue 18): ``min_width`` /
``min_height`` (pixels: a smaller image is not given to it), ``channels`` (1 or 3, checked
against ``input_shape``), ``languages`` (ISO 639-1 codes of the text it was trained on),
``min_bytes`` (shorter text is not given to it) and ``min_confidence`` (a best score below it
is "no confident label"); the infer stage passes an artifact that does not fit on with the
reason (:func:`thunderline.ml.stage.not_applicable`), it is not a failure.
:meth:`ModelRegistry.refresh` re-reads the file when it changed, so a running service picks
up a model added while it runs. Every load:

1. resolves the path (symlinks and ``..``); a file outside ``TL_ONNX_MODEL_DIR`` or an entry
   without a ``sha256`` is refused (:class:`UntrustedModelError`) unless
   ``TL_ALLOW_UNTRUSTED_MODELS=true``, which loads it and counts
   ``thunderline_ml_untrusted_model_loaded_total``;
2. hashes the bytes and compares them with the listed SHA-256: a mismatch logs
   ``[security] Model checksum mismatch: expected=..., actual=...``, counts
   ``thunderline_ml_model_checksum_mismatch_total`` and raises :class:`ChecksumMismatch`;
3. checks the chain and the model's folder (``models/<name>/``, the parent of ``onnx/``; see
   :mod:`thunderline.ml.trust`): the model root, ``registry.toml``, the public key and every
   path of the folder neither writable by group or others nor owned by anyone but the service
   user or root; every file matching its ``checksums.txt``; its ``model.sig`` verifying with
   the public key (the maintainers' key shipped in the package, or ``TL_MODEL_PUBLIC_KEY``,
   which must lie outside the model root). With
   ``TL_MODEL_SIGNATURE_REQUIRED=true`` (the default) an unsigned or mis-signed folder, or one
   without ``checksums.txt``, is refused with a ``[security]`` log line; a checksum that does
   not match is always refused;
4. refuses any initializer whose external-data location leaves the model's folder (always,
   whatever the trust setting), before ONNX Runtime opens the file;
5. creates the session from the very bytes that were hashed.

``TL_ALLOW_UNTRUSTED_MODELS=true`` is the one escape hatch: the refusals of 1 and 3 (except a
checksum mismatch) become ``[security]`` warnings and the load is counted.
"""

from __future__ import annotations

import hashlib
import logging
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import onnx

from thunderline.config import Settings
from thunderline.errors import ChecksumMismatch, ConfigError
from thunderline.ml.errors import (
    ChecksumsMissingError,
    ExternalDataEscapeError,
    ModelLoadError,
    ModelNotFoundError,
    ModelPermissionError,
    UntrustedModelError,
)
from thunderline.ml.model import OnnxModel, SessionConfig, parse_proto
from thunderline.ml.trust import (
    SHIPPED_PUBLIC_KEY,
    check_permissions,
    file_sha256,
    model_folder_of,
    verify_checksums,
    verify_signature,
)
from thunderline.obs import metrics

_log = logging.getLogger("thunderline.ml")
REGISTRY_FILE = "registry.toml"


def verify_model_checksum(data: bytes, expected: str) -> str:
    """Return the SHA-256 of ``data`` if it is ``expected``; else log, count and raise.

    Raises:
        ChecksumMismatch: logged on the ``thunderline.ml`` logger as
            ``[security] Model checksum mismatch: expected=..., actual=...``.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected.lower():
        metrics.MODEL_CHECKSUM_MISMATCH.inc()
        _log.warning("[security] Model checksum mismatch: expected=%s, actual=%s", expected, actual)
        raise ChecksumMismatch(
            "model checksum mismatch: the file is not the one the registry lists",
            expected=expected,
            actual=actual,
        )
    return actual


def _iter_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _iter_tensors(attr.g)
            for sub in attr.graphs:
                yield from _iter_tensors(sub)


def external_data_locations(proto: onnx.ModelProto) -> list[str]:
    """The ``location`` of every tensor stored as external data (subgraphs included)."""
    found: list[str] = []
    for tensor in _iter_tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in tensor.external_data}
            found.append(entries.get("location", ""))
    for function in proto.functions:
        for node in function.node:
            for attr in node.attribute:
                if attr.HasField("t") and attr.t.data_location == onnx.TensorProto.EXTERNAL:
                    found.append({e.key: e.value for e in attr.t.external_data}.get("location", ""))
    return found


def check_external_data(proto: onnx.ModelProto, model_path: Path | None) -> bool:
    """Refuse external-data locations outside the model's folder; True if there are any.

    Raises:
        ExternalDataEscapeError: an absolute location, one that resolves (symlinks and ``..``)
            outside the folder, or external data on a model loaded from bytes.
    """
    locations = external_data_locations(proto)
    if not locations:
        return False
    if model_path is None:
        raise ExternalDataEscapeError("a model loaded from bytes cannot use external data")
    folder = model_path.parent.resolve()
    for location in locations:
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder):
            raise ExternalDataEscapeError(
                f"external data location {location!r} of {model_path.name} is outside "
                f"the model folder {folder}",
                details={"location": location, "folder": str(folder)},
            )
    return True


def _count(raw: dict[str, Any], key: str) -> int:
    """A non-negative integer field of a registry entry (0 when absent)."""
    value = raw.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"registry entry {raw.get('name')!r}: {key} must be an integer >= 0")
    return value


def _channels(raw: dict[str, Any]) -> int | None:
    """The declared image channels (1 or 3), checked against the input shape and layout."""
    value = raw.get("channels")
    if value is None:
        return None
    if value not in (1, 3) or isinstance(value, bool):
        raise ConfigError(f"registry entry {raw.get('name')!r}: channels must be 1 or 3")
    shape = list(raw.get("input_shape", ()))
    if len(shape) == 4:
        layout = str(raw.get("layout", "NCHW")).upper()
        declared = shape[1] if layout == "NCHW" else shape[-1]
        if declared != value:
            raise ConfigError(
                f"registry entry {raw.get('name')!r}: channels = {value} but its input_shape "
                f"{shape} ({layout}) has {declared}"
            )
    return int(value)


@dataclass(frozen=True)
class ModelEntry:
    """One registry entry."""

    name: str
    path: str
    version: str = "0"
    kind: str = "image"
    input_shape: tuple[int | str, ...] = ()
    layout: str = "NCHW"
    mean: tuple[float, ...] = (0.0, 0.0, 0.0)
    std: tuple[float, ...] = (1.0, 1.0, 1.0)
    tokenizer: str | None = None
    background: str | None = None
    preload: bool = False
    sha256: str | None = None
    labels: tuple[str, ...] = ()
    description: str = ""
    applies_to: tuple[str, ...] = ()
    min_width: int = 0
    min_height: int = 0
    channels: int | None = None
    languages: tuple[str, ...] = ()
    min_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelEntry:
        """An entry from a ``[[models]]`` table; unknown keys are refused."""
        known = {
            "name", "path", "version", "kind", "input_shape", "layout", "mean", "std",
            "tokenizer", "background", "preload", "sha256", "labels", "description",
            "applies_to", "min_width", "min_height", "channels", "languages", "min_bytes",
        }  # fmt: skip
        if not raw.get("name") or not raw.get("path"):
            raise ConfigError(f"registry entry needs name and path: {raw!r}")
        sha = raw.get("sha256")
        return cls(
            name=str(raw["name"]),
            path=str(raw["path"]),
            version=str(raw.get("version", "0")),
            kind=str(raw.get("kind", "image")),
            input_shape=tuple(raw.get("input_shape", ())),
            layout=str(raw.get("layout", "NCHW")).upper(),
            mean=tuple(float(x) for x in raw.get("mean", (0.0, 0.0, 0.0))),
            std=tuple(float(x) for x in raw.get("std", (1.0, 1.0, 1.0))),
            tokenizer=raw.get("tokenizer"),
            background=str(raw["background"]) if raw.get("background") else None,
            preload=bool(raw.get("preload", False)),
            sha256=str(sha).lower() if sha else None,
            labels=tuple(str(x) for x in raw.get("labels", ())),
            description=str(raw.get("description", "")),
            applies_to=tuple(str(x).lower() for x in raw.get("applies_to", ())),
            min_width=_count(raw, "min_width"),
            min_height=_count(raw, "min_height"),
            channels=_channels(raw),
            languages=tuple(str(x).lower() for x in raw.get("languages", ())),
            min_bytes=_count(raw, "min_bytes"),
            extra={k: v for k, v in raw.items() if k not in known},
        )

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data."""
        return {
            "name": self.name,
            "path": self.path,
            "version": self.version,
            "kind": self.kind,
            "input_shape": list(self.input_shape),
            "preload": self.preload,
            "sha256": self.sha256,
            "labels": list(self.labels),
            "applies_to": list(self.applies_to),
            "min_width": self.min_width,
            "min_height": self.min_height,
            "channels": self.channels,
            "languages": list(self.languages),
            "min_bytes": self.min_bytes,
        }


@dataclass(frozen=True)
class ModelCheck:
    """The outcome of checking one entry: ``ok``, ``mismatch``, ``missing`` or ``untrusted``."""

    name: str
    path: str
    status: str
    expected: str | None = None
    actual: str | None = None
    detail: str = ""


class ModelRegistry:
    """The models listed in ``<model_dir>/registry.toml`` and the gate every load goes through."""

    def __init__(
        self,
        model_dir: Path,
        *,
        allow_untrusted: bool = False,
        config: SessionConfig | None = None,
        registry_file: Path | None = None,
        signature_required: bool = True,
        public_key: Path | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.allow_untrusted = allow_untrusted
        self.signature_required = signature_required
        #: the trust root: never inside the model folder (see :meth:`chain_problems`)
        self.public_key = Path(public_key) if public_key else SHIPPED_PUBLIC_KEY
        self.config = config or SessionConfig()
        self.registry_file = registry_file or self.model_dir / REGISTRY_FILE
        self._stamp = self._stat()
        self._entries = self._read(self.registry_file)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """The registry the settings point at (model folder, trust and session options)."""
        return cls(
            settings.onnx.model_dir,
            allow_untrusted=settings.allow_untrusted_models,
            config=SessionConfig.from_settings(settings),
            signature_required=settings.model.signature_required,
            public_key=settings.model.public_key,
        )

    @staticmethod
    def _read(path: Path) -> dict[str, ModelEntry]:
        if not path.is_file():
            return {}
        try:
            raw = tomllib.loads(path.read_text("utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read model registry {path}: {exc}") from exc
        entries: dict[str, ModelEntry] = {}
        for item in raw.get("models", []):
            entry = ModelEntry.from_dict(item)
            if entry.name in entries:
                raise ConfigError(f"model {entry.name!r} is listed twice in {path}")
            entries[entry.name] = entry
        return entries

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.registry_file.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def refresh(self) -> bool:
        """Re-read ``registry.toml`` if it changed since it was read; True when it was re-read.

        One ``stat`` tells. A file that no longer parses keeps the entries read before (logged).
        """
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        try:
            entries = self._read(self.registry_file)
        except ConfigError as exc:
            _log.error("model registry %s changed but cannot be read: %s", self.registry_file, exc)
            return False
        self._stamp, self._entries = stamp, entries
        _log.warning("model registry %s re-read: %s", self.registry_file, sorted(entries))
        return True

    def applying_to(self, label: str, group: str) -> ModelEntry | None:
        """The first entry whose ``applies_to`` names ``label``, else the first naming ``group``."""
        for wanted in (label.lower(), group.lower()):
            for entry in self._entries.values():
                if wanted in entry.applies_to:
                    return entry
        return None

    @property
    def exists(self) -> bool:
        """True when the model folder has a registry file."""
        return self.registry_file.is_file()

    def list_models(self) -> list[ModelEntry]:
        """Every listed model, in file order."""
        return list(self._entries.values())

    def entry(self, name: str) -> ModelEntry:
        """The entry called ``name``.

        Raises:
            ModelNotFoundError: no such model in the registry.
        """
        try:
            return self._entries[name]
        except KeyError:
            raise ModelNotFoundError(
                f"model {name!r} is not in the registry {self.registry_file} "
                f"(listed: {sorted(self._entries)})",
                details={"model": name},
            ) from None

    def path_of(self, entry: ModelEntry) -> Path:
        """The model file of an entry (relative paths are under the model folder)."""
        path = Path(entry.path).expanduser()
        return path if path.is_absolute() else self.model_dir / path

    # ---- loading ------------------------------------------------------------------------
    def get_model(self, name: str) -> OnnxModel:
        """Load the listed model ``name`` through the gate (a new session each call).

        Raises:
            ModelNotFoundError, UntrustedModelError, ExternalDataEscapeError,
            ChecksumMismatch, ModelLoadError.
        """
        entry = self.entry(name)
        return self._load(
            self.path_of(entry),
            name=entry.name,
            expected_sha256=entry.sha256,
            version=entry.version,
            labels=entry.labels or None,
        )

    def load_path(
        self, path: Path | str, *, sha256: str | None = None, name: str | None = None
    ) -> OnnxModel:
        """Load a model file that may not be listed, through the same gate.

        Without ``sha256``, or outside the model folder, it loads only when untrusted models
        are allowed.
        """
        p = Path(path)
        return self._load(p, name=name or p.stem, expected_sha256=sha256)

    def _trusted_location(self, path: Path) -> tuple[Path, bool]:
        try:
            resolved = path.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ModelNotFoundError(f"model file {path} does not exist") from exc
        except (OSError, RuntimeError) as exc:  # symlink loops
            raise ModelLoadError(f"cannot resolve model path {path}: {exc}") from exc
        inside = resolved.is_relative_to(self.model_dir.resolve())
        return resolved, inside

    def _load(
        self,
        path: Path,
        *,
        name: str,
        expected_sha256: str | None,
        version: str | None = None,
        labels: Iterable[str] | None = None,
    ) -> OnnxModel:
        resolved, inside = self._trusted_location(path)
        problems: list[UntrustedModelError] = []
        if not inside:
            problems.append(
                UntrustedModelError(
                    f"{resolved} is outside the model folder {self.model_dir.resolve()}"
                )
            )
        if not expected_sha256:
            problems.append(UntrustedModelError(f"no checksum is listed for {resolved}"))
        if problems and not self.allow_untrusted:  # refused before the file is even read
            self._refuse(name, resolved, problems)
        try:
            data = resolved.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read model {resolved}: {exc}") from exc
        actual = (
            verify_model_checksum(data, expected_sha256)
            if expected_sha256
            else hashlib.sha256(data).hexdigest()
        )
        if inside:  # a file outside the model dir has no trusted folder to check
            problems += self.folder_problems(resolved)
        if problems:
            if not self.allow_untrusted:
                self._refuse(name, resolved, problems)
            metrics.UNTRUSTED_MODEL_LOADED.inc()
            _log.warning(
                "[security] loading untrusted model %s: %s", name, "; ".join(map(str, problems))
            )
        proto = parse_proto(data, str(resolved))
        has_external = check_external_data(proto, resolved)
        return OnnxModel.from_bytes(
            data,
            name=name,
            version=version,
            labels=list(labels) if labels is not None else None,
            config=self.config,
            source=str(resolved),
            sha256=actual,
            proto=proto,
            session_path=resolved if has_external else None,
        )

    @staticmethod
    def _refuse(name: str, resolved: Path, problems: list[UntrustedModelError]) -> NoReturn:
        why = "; ".join(str(p) for p in problems)
        _log.warning("[security] model %s refused: %s", name, why)
        first = problems[0]
        raise type(first)(
            f"untrusted model {name!r} refused: {why} (set TL_ALLOW_UNTRUSTED_MODELS=true to allow)",
            details={"model": name, "path": str(resolved), **first.details},
        )

    def folder_problems(self, model_file: Path) -> list[UntrustedModelError]:
        """Why the folder of ``model_file`` is not trusted (empty list: it is).

        Permissions and owners (:meth:`chain_problems`, the folder and its files) are always
        checked; ``checksums.txt`` and the signature when signatures are required. A ``checksums.txt`` that is present is always
        checked, and a mismatch raises :class:`ChecksumMismatch` at once.
        """
        folder = model_folder_of(model_file)
        problems: list[UntrustedModelError] = list(self.chain_problems())
        try:
            check_permissions([folder])
        except UntrustedModelError as exc:
            problems.append(exc)
        try:
            verify_checksums(folder)
        except ChecksumsMissingError as exc:
            if self.signature_required:
                problems.append(exc)
        if self.signature_required:
            try:
                verify_signature(folder, self.public_key)
            except UntrustedModelError as exc:
                problems.append(exc)
        return problems

    def chain_problems(self) -> list[UntrustedModelError]:
        """Why the chain above the model folders is not trusted (empty list: it is).

        The model root folder and ``registry.toml`` (not the whole root: scripts may sit
        there), and with signatures required the public key and its folder: none writable by
        group or others, none owned by someone other than the service user or root. The key
        must not lie inside the model root: whoever can write the models could replace it.
        """
        problems: list[UntrustedModelError] = []
        root = self.model_dir.resolve()
        shallow = [root, self.registry_file]
        if self.signature_required:
            key = self.public_key.resolve()
            if key.is_relative_to(root):
                problems.append(
                    ModelPermissionError(
                        f"the verifying key {self.public_key} is inside the model folder "
                        f"{self.model_dir}: whoever can write the models could replace it "
                        "(keep TL_MODEL_PUBLIC_KEY outside it, or leave it unset for the "
                        "key shipped with Thunderline)",
                        details={"key": str(self.public_key), "model_dir": str(self.model_dir)},
                    )
                )
            shallow += [key.parent, key]
        try:
            check_permissions([], shallow)
        except UntrustedModelError as exc:
            problems.append(exc)
        return problems

    # ---- verification -------------------------------------------------------------------
    def verify(self, names: Iterable[str] | None = None) -> list[ModelCheck]:
        """Check the listed models (all, or ``names``) as a load would, without loading them.

        Per model: the file exists, is inside the model folder, matches its listed SHA-256;
        its folder matches ``checksums.txt``, is signed (when required) and not writable by
        group or others; no external-data location leaves the folder. A mismatch is logged
        with the ``[security]`` line (not counted as a blocked load).
        """
        chosen = [self.entry(n) for n in names] if names is not None else self.list_models()
        return [self._verify_one(entry) for entry in chosen]

    def _verify_one(self, entry: ModelEntry) -> ModelCheck:
        path = self.path_of(entry)
        if not path.is_file():
            return ModelCheck(entry.name, str(path), "missing", entry.sha256)
        resolved = path.resolve()
        actual = file_sha256(resolved)

        def result(status: str, detail: str = "") -> ModelCheck:
            return ModelCheck(entry.name, str(path), status, entry.sha256, actual, detail)

        if not resolved.is_relative_to(self.model_dir.resolve()):
            return result("untrusted", "outside the model folder")
        if not entry.sha256:
            return result("untrusted", "no checksum listed")
        if actual != entry.sha256:
            _log.warning(
                "[security] Model checksum mismatch: expected=%s, actual=%s", entry.sha256, actual
            )
            return result("mismatch", "file differs from the registry")
        try:
            problems = self.folder_problems(resolved)
        except ChecksumMismatch as exc:
            return result("mismatch", str(exc))
        if problems:
            return result("untrusted", "; ".join(str(p) for p in problems))
        try:
            proto = onnx.load_model(str(resolved), load_external_data=False)
            check_external_data(proto, resolved)
        except ExternalDataEscapeError as exc:
            return result("untrusted", str(exc))
        except Exception as exc:  # DecodeError and friends: not an ONNX file
            return result("invalid", f"cannot parse {resolved.name}: {type(exc).__name__}")
        return result("ok")
