"""Rows for ``thunderline doctor`` about the models.

ONNX Runtime, the registry, checksums, signatures and model health.
"""

from __future__ import annotations

import onnxruntime as ort

from thunderline.config import Settings
from thunderline.errors import reason_of
from thunderline.ml.model import SessionConfig, resolve_providers
from thunderline.ml.registry import ModelRegistry

Row = tuple[str, str, str]


def doctor_report(settings: Settings) -> list[Row]:
    """(check, status ``ok``/``warn``/``fail``, detail) rows for the ONNX part.

    Verifies every listed model's checksum, then loads each model through the registry gate
    and runs its health probe (dummy tensor from the I/O spec), so a broken, tampered or
    untrusted model shows as ``fail``.
    """
    rows: list[Row] = []
    config = SessionConfig.from_settings(settings)
    try:
        providers = resolve_providers(settings.onnx.execution_provider)
    except Exception as exc:
        return [("onnx runtime", "fail", str(exc))]
    rows.append(
        (
            "onnx runtime",
            "ok",
            f"onnxruntime {ort.__version__}, {providers[0]}, {config.threads} intra-op threads, "
            "spinning off",
        )
    )
    if not settings.onnx.enabled:
        rows.append(("onnx enabled", "warn", "TL_ONNX_ENABLED=false: the infer stage is off"))
    try:
        registry = ModelRegistry.from_settings(settings)
    except Exception as exc:
        return [*rows, ("model registry", "fail", str(exc))]
    if not registry.exists:
        status = "fail" if settings.onnx.enabled else "warn"
        return [*rows, ("model registry", status, f"{registry.registry_file} not found")]
    entries = registry.list_models()
    rows.append(("model registry", "ok", f"{registry.registry_file} ({len(entries)} models)"))
    verified = {r.name: r for r in registry.verify()}
    trust = "checksums + signature ok" if registry.signature_required else "signature not required"
    for entry in entries:
        check = f"model {entry.name}"
        result = verified[entry.name]
        if result.status != "ok":
            detail = f"{result.status}: {result.detail or result.path}"
            if result.status == "mismatch":
                detail += f" (expected {result.expected}, actual {result.actual})"
            status = "warn" if result.status == "untrusted" and registry.allow_untrusted else "fail"
            rows.append((check, status, detail))
            if status == "fail":
                continue
        try:
            model = registry.get_model(entry.name)
            probe_ms = model.probe() * 1000
            batch = "dynamic" if model.spec.dynamic_batch else "fixed"
            model.close()
        except Exception as exc:
            rows.append((check, "fail", f"{reason_of(exc)}: {exc}"))
            continue
        rows.append(
            (
                check,
                "ok",
                f"v{entry.version}, sha256 ok, {trust}, healthy (probe {probe_ms:.1f} ms, "
                f"{batch} batch)",
            )
        )
    return rows
