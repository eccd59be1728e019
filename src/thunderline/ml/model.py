"""``OnnxModel``: one ONNX Runtime session with its I/O spec, metadata and a checked ``infer``.

Sessions are configured from settings (:class:`SessionConfig`): intra-op threads from
``TL_ONNX_THREADPOOL`` (capped at the machine's cores), spinning off (sessions share the cores
with Magika and spaCy, ARCHITECTURE §10), execution provider from
``TL_ONNX_EXECUTION_PROVIDER`` (``cuda`` falls back to CPU with a warning). ONNX Runtime writes
nothing to disk: profiling is off and no optimised model file is set.

This is the low-level loader: it applies no trust policy. Load models through
:class:`~thunderline.ml.registry.ModelRegistry`, which verifies checksums and the
untrusted-model gate first.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray

from thunderline.config import Settings
from thunderline.errors import ConfigError
from thunderline.ml.errors import InferenceError, ModelInputError, ModelLoadError
from thunderline.ml.spec import IOSpec
from thunderline.ml.tensors import InferenceResult, ModelInput, ModelOutput
from thunderline.obs import metrics, telemetry

_log = logging.getLogger("thunderline.ml")

Inputs = Mapping[str, NDArray[Any] | ModelInput] | ModelInput | Sequence[ModelInput] | NDArray[Any]

_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass(frozen=True)
class SessionConfig:
    """How sessions are created (one place for the CPU budget)."""

    threads: int = 1
    provider: str = "cpu"
    allow_spinning: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionConfig:
        """Threads from ``TL_ONNX_THREADPOOL`` capped at the core count; spinning off."""
        cores = os.cpu_count() or 1
        return cls(
            threads=max(1, min(settings.onnx.threadpool, cores)),
            provider=settings.onnx.execution_provider,
        )


def resolve_providers(provider: str) -> list[str]:
    """ONNX Runtime providers for a setting value; ``cuda`` falls back to CPU with a warning.

    Raises:
        ConfigError: for a provider name other than ``cpu`` or ``cuda``.
    """
    key = provider.strip().lower()
    if key not in _PROVIDERS:
        raise ConfigError(f"TL_ONNX_EXECUTION_PROVIDER must be 'cpu' or 'cuda', got {provider!r}")
    if key == "cpu":
        return ["CPUExecutionProvider"]
    available = ort.get_available_providers()
    if _PROVIDERS[key] in available:
        return [_PROVIDERS[key], "CPUExecutionProvider"]
    _log.warning(
        "execution provider %r is not available (available: %s); falling back to cpu",
        provider,
        ", ".join(available),
    )
    return ["CPUExecutionProvider"]


def session_options(config: SessionConfig) -> ort.SessionOptions:
    """Session options that honour the CPU budget and write nothing to disk."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = config.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_profiling = False  # no profiling JSON files
    so.optimized_model_filepath = ""  # no optimised-model output
    so.log_severity_level = 3
    spin = "1" if config.allow_spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return so


@dataclass(frozen=True)
class ModelMetadata:
    """What the ONNX file says about itself."""

    producer: str
    producer_version: str
    opset: dict[str, int]
    ir_version: int
    model_version: int
    graph_name: str
    domain: str
    metadata_props: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, proto: onnx.ModelProto) -> ModelMetadata:
        """Read producer, opset and IR version from an ONNX model."""
        return cls(
            producer=proto.producer_name,
            producer_version=proto.producer_version,
            opset={(o.domain or "ai.onnx"): int(o.version) for o in proto.opset_import},
            ir_version=int(proto.ir_version),
            model_version=int(proto.model_version),
            graph_name=proto.graph.name,
            domain=proto.domain,
            metadata_props={p.key: p.value for p in proto.metadata_props},
        )

    def to_dict(self) -> dict[str, Any]:
        """The metadata as JSON-ready data."""
        return {
            "producer": self.producer,
            "producer_version": self.producer_version,
            "opset": dict(self.opset),
            "ir_version": self.ir_version,
            "model_version": self.model_version,
            "graph_name": self.graph_name,
            "domain": self.domain,
            "metadata_props": dict(self.metadata_props),
        }


def parse_proto(data: bytes, what: str) -> onnx.ModelProto:
    """Parse ONNX bytes without loading external data.

    Raises:
        ModelLoadError: when the bytes are not an ONNX model.
    """
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelLoadError(f"{what} is not an ONNX model: {exc}") from exc
    if not proto.graph.node and not proto.graph.input:
        raise ModelLoadError(f"{what} is not an ONNX model (empty graph)")
    return proto


class OnnxModel:
    """One loaded model: session, I/O spec, metadata, labels and ``infer``."""

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        name: str,
        version: str = "0",
        metadata: ModelMetadata | None = None,
        labels: Sequence[str] = (),
        source: str = "<bytes>",
        sha256: str | None = None,
    ) -> None:
        self.session: ort.InferenceSession | None = session
        self.name = name
        self.version = version
        self.metadata = metadata
        self.labels = list(labels)
        self.source = source
        self.sha256 = sha256
        self.spec = IOSpec.from_session(session)
        self.providers = list(session.get_providers())
        self._output_names = self.spec.output_names

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_bytes(
        cls,
        data: bytes,
        *,
        name: str = "model",
        version: str | None = None,
        labels: Sequence[str] | None = None,
        config: SessionConfig | None = None,
        source: str = "<bytes>",
        sha256: str | None = None,
        proto: onnx.ModelProto | None = None,
        session_path: Path | None = None,
    ) -> OnnxModel:
        """Load from ONNX bytes.

        Args:
            data: the serialised model.
            name: the model's name (metric label: keep it from a bounded set).
            version: defaults to the file's ``version`` metadata, else its model_version.
            labels: class labels; default the file's ``labels`` metadata (a JSON list).
            config: session configuration (threads, provider, spinning).
            source: where the bytes came from (for messages).
            sha256: the verified checksum, if known.
            proto: the already parsed model (saves parsing twice).
            session_path: open the session from this path instead of ``data`` (models with
                external data, after the registry checked their locations).

        Raises:
            ModelLoadError: when the bytes are not a model ONNX Runtime accepts.
        """
        config = config or SessionConfig()
        proto = proto if proto is not None else parse_proto(data, source)
        meta = ModelMetadata.from_proto(proto)
        try:
            session = ort.InferenceSession(
                str(session_path) if session_path is not None else data,
                sess_options=session_options(config),
                providers=resolve_providers(config.provider),
            )
        except ConfigError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"ONNX Runtime cannot load {source}: {exc}") from exc
        if labels is None:
            try:
                labels = [str(x) for x in json.loads(meta.metadata_props.get("labels", "[]"))]
            except (ValueError, TypeError):
                labels = []
        if version is None:
            version = meta.metadata_props.get("version") or str(meta.model_version)
        return cls(
            session,
            name=name,
            version=version,
            metadata=meta,
            labels=labels,
            source=source,
            sha256=sha256,
        )

    @classmethod
    def from_path(
        cls,
        path: Path | str,
        *,
        name: str | None = None,
        config: SessionConfig | None = None,
        labels: Sequence[str] | None = None,
        version: str | None = None,
    ) -> OnnxModel:
        """Load from a file (no trust checks: use the registry for that).

        Raises:
            ModelLoadError: unreadable file or a model ONNX Runtime refuses.
        """
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read model {p}: {exc}") from exc
        return cls.from_bytes(
            data,
            name=name or p.stem,
            version=version,
            labels=labels,
            config=config,
            source=str(p),
        )

    # ---- running ------------------------------------------------------------------------
    def feeds(self, inputs: Inputs) -> dict[str, Any]:
        """Normalise the accepted input forms into ``{input name: array}``.

        Accepts a mapping of names to arrays (or ModelInputs), one ModelInput, a sequence of
        ModelInputs (unnamed ones fill the inputs in order) or a bare array (single-input
        models only).
        """
        names = self.spec.input_names
        if isinstance(inputs, np.ndarray):
            if len(names) != 1:
                raise ModelInputError(
                    f"a bare array fits single-input models; this one expects inputs {names}",
                    details={"expected": names},
                )
            return {names[0]: inputs}
        if isinstance(inputs, ModelInput):
            inputs = [inputs]
        if isinstance(inputs, Mapping):
            return {str(k): v.tensor if isinstance(v, ModelInput) else v for k, v in inputs.items()}
        out: dict[str, Any] = {}
        for position, item in enumerate(inputs):
            if not isinstance(item, ModelInput):
                raise ModelInputError(
                    f"expected ModelInput items, got {type(item).__name__}",
                    details={"expected": names},
                )
            key = item.name or (names[position] if position < len(names) else f"#{position}")
            out[key] = item.tensor
        return out

    def run_checked(self, feeds: dict[str, Any]) -> tuple[list[NDArray[Any]], float]:
        """Run already checked feeds; return the outputs and the run time in seconds.

        Raises:
            InferenceError: ONNX Runtime failed (or the session is closed).
        """
        session = self.session
        if session is None:
            raise InferenceError(f"model {self.name} is closed")
        started = time.perf_counter()
        try:
            outputs = session.run(self._output_names, feeds)
        except Exception as exc:
            raise InferenceError(f"model {self.name}: ONNX Runtime failed: {exc}") from exc
        return [np.asarray(o) for o in outputs], time.perf_counter() - started

    def make_result(
        self,
        outputs: Sequence[NDArray[Any]],
        *,
        run_s: float,
        total_s: float,
        batch_size: int = 1,
        correlation_id: str | None = None,
    ) -> InferenceResult:
        """Turn the session's outputs into a typed result (labels and scores, timings)."""
        inference_ms = round(run_s * 1000, 4)
        meta = {
            "model": self.name,
            "version": self.version,
            "inference_ms": inference_ms,
            "correlation_id": correlation_id,
        }
        return InferenceResult(
            outputs={
                name: ModelOutput(name, tensor, meta)
                for name, tensor in zip(self._output_names, outputs, strict=True)
            },
            model=self.name,
            version=self.version,
            inference_ms=inference_ms,
            total_ms=round(total_s * 1000, 4),
            batch_size=batch_size,
            correlation_id=correlation_id,
        )

    def infer(self, inputs: Inputs, *, correlation_id: str | None = None) -> InferenceResult:
        """Check ``inputs`` against the spec, run them, and return outputs plus timing.

        Records ``thunderline_onnx_infer_duration_seconds`` (run time) and, on failure,
        ``thunderline_onnx_infer_errors_total``; emits ``("thunderline", "onnx", "infer",
        "stop" | "error")`` telemetry.

        Raises:
            ModelInputError: inputs that do not match the spec (names expected and got).
            InferenceError: ONNX Runtime failed on valid inputs.
        """
        started = time.perf_counter()
        meta = {"model": self.name, "correlationid": correlation_id}
        try:
            feeds = self.feeds(inputs)
            self.spec.check(feeds)
            outputs, run_s = self.run_checked(feeds)
        except (ModelInputError, InferenceError) as exc:
            record_failure(self.name, exc, time.perf_counter() - started, correlation_id)
            raise
        record_success(self.name, run_s, meta)
        return self.make_result(
            outputs,
            run_s=run_s,
            total_s=time.perf_counter() - started,
            correlation_id=correlation_id,
        )

    def probe(self) -> float:
        """Health probe: run dummy inputs built from the spec; return the run time (s).

        Raises:
            InferenceError: the session failed, or produced non-finite or mis-shaped outputs.
        """
        feeds = self.spec.dummy_inputs(1)
        outputs, run_s = self.run_checked(feeds)
        for spec, out in zip(self.spec.outputs, outputs, strict=True):
            if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
                raise InferenceError(f"model {self.name}: probe output {spec.name} not finite")
            if len(out.shape) != spec.rank:
                raise InferenceError(
                    f"model {self.name}: probe output {spec.name} has rank {out.ndim}, "
                    f"expected {spec.rank}"
                )
        return run_s

    def close(self) -> None:
        """Release the session (idempotent)."""
        self.session = None

    @property
    def closed(self) -> bool:
        """True once the session is released."""
        return self.session is None

    def describe(self) -> dict[str, Any]:
        """Name, version, source, checksum and I/O of the loaded model."""
        return {
            "name": self.name,
            "version": self.version,
            "source": self.source,
            "sha256": self.sha256,
            "providers": self.providers,
            "spec": self.spec.to_dict(),
            "metadata": self.metadata.to_dict() if self.metadata else None,
            "labels": self.labels,
        }


def record_success(model: str, run_s: float, meta: Mapping[str, Any]) -> None:
    """Count one successful ONNX Runtime run (histogram + telemetry)."""
    metrics.ONNX_INFER_DURATION.labels(model).observe(run_s)
    telemetry.emit(("thunderline", "onnx", "infer", "stop"), {"duration": run_s}, meta)


def record_failure(
    model: str, exc: BaseException, elapsed_s: float, correlation_id: str | None
) -> None:
    """Count one failed inference (error counter + telemetry)."""
    from thunderline.errors import reason_of

    reason = reason_of(exc)
    metrics.ONNX_INFER_ERRORS.labels(model, reason).inc()
    telemetry.emit(
        ("thunderline", "onnx", "infer", "error"),
        {"duration": elapsed_s},
        {"model": model, "reason": reason, "error": exc, "correlationid": correlation_id},
    )
