"""Add the model registry to a CycloneDX SBOM.

One ``machine-learning-model`` component per model, with every file of its folder as a nested
``file`` component carrying its SHA-256.

``make sbom`` runs ``cyclonedx-py environment --of JSON --sv 1.6 --output-reproducible`` over
the venv (the Python packages, offline), then this module::

    python -m thunderline.ml.sbom sbom.cdx.json --models models

Hashes come from the files themselves (not from ``checksums.txt``), so the SBOM states what is
on disk; the registry's SHA-256 of each ONNX file is checked against it on the way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from thunderline.errors import ChecksumMismatch, ThunderlineError
from thunderline.ml.registry import ModelRegistry
from thunderline.ml.trust import SIGNATURE_FILE, file_sha256, folder_files, model_folder_of


def model_components(model_dir: Path) -> list[dict[str, Any]]:
    """CycloneDX components for every model of the registry in ``model_dir``.

    Raises:
        ChecksumMismatch: an ONNX file differs from its registry SHA-256.
    """
    registry = ModelRegistry(model_dir)
    components: list[dict[str, Any]] = []
    for entry in registry.list_models():
        model_file = registry.path_of(entry)
        folder = model_folder_of(model_file)
        files = []
        for rel in [*folder_files(folder), "checksums.txt", SIGNATURE_FILE]:
            path = folder / rel
            if not path.is_file():
                continue
            digest = file_sha256(path)
            if path == model_file and entry.sha256 and digest != entry.sha256:
                raise ChecksumMismatch(
                    f"{path} differs from the registry", expected=entry.sha256, actual=digest
                )
            files.append(
                {
                    "type": "file",
                    "bom-ref": f"model-file:{entry.name}/{rel}",
                    "name": f"{model_dir.name}/{folder.name}/{rel}",
                    "hashes": [{"alg": "SHA-256", "content": digest}],
                }
            )
        components.append(
            {
                "type": "machine-learning-model",
                "bom-ref": f"model:{entry.name}",
                "name": entry.name,
                "version": entry.version,
                "description": entry.description,
                "hashes": [{"alg": "SHA-256", "content": entry.sha256 or file_sha256(model_file)}],
                "properties": [
                    {"name": "thunderline:kind", "value": entry.kind},
                    {"name": "thunderline:labels", "value": json.dumps(list(entry.labels))},
                    {"name": "thunderline:path", "value": entry.path},
                ],
                "components": files,
            }
        )
    return components


def add_models(sbom: dict[str, Any], model_dir: Path) -> dict[str, Any]:
    """``sbom`` with the model components appended (existing ``model:`` components replaced)."""
    kept = [
        c for c in sbom.get("components", []) if not str(c.get("bom-ref", "")).startswith("model:")
    ]
    sbom["components"] = kept + model_components(model_dir)
    return sbom


def main(argv: list[str] | None = None) -> int:
    """Command line: add the model registry to a CycloneDX SBOM file."""
    parser = argparse.ArgumentParser(description="Add the model registry to a CycloneDX SBOM.")
    parser.add_argument("sbom", type=Path, help="CycloneDX JSON written by cyclonedx-py.")
    parser.add_argument("--models", type=Path, default=Path("models"), help="Model folder.")
    args = parser.parse_args(argv)
    try:
        sbom = json.loads(args.sbom.read_text("utf-8"))
        add_models(sbom, args.models)
    except (OSError, ValueError, ThunderlineError) as exc:
        print(f"error: {args.sbom}: {exc}", file=sys.stderr)
        return 2
    args.sbom.write_text(json.dumps(sbom, indent=2) + "\n", "utf-8")
    count = len(sbom["components"])
    print(f"{args.sbom}: {count} components (models from {args.models})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
