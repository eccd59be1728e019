"""``make sbom``: cyclonedx-py over the real venv, then the model files added with SHA-256."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.unit.ml._helpers import REAL_MODELS, REPO

from thunderline.ml.trust import file_sha256


def test_sbom_lists_the_runtime_packages_and_every_model_file(tmp_path: Path) -> None:
    cyclonedx = Path(sys.executable).parent / "cyclonedx-py"
    if not cyclonedx.is_file():
        pytest.fail(f"{cyclonedx} is missing: cyclonedx-bom is in the dev extra (make venv)")
    makefile = (REPO / "Makefile").read_text()
    assert "cyclonedx-py environment --of JSON --sv 1.6 --output-reproducible" in makefile
    sbom = tmp_path / "sbom.cdx.json"
    subprocess.run(
        [str(cyclonedx), "environment", "--of", "JSON", "--sv", "1.6", "--output-reproducible",
         "-o", str(sbom), sys.executable],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "thunderline.ml.sbom", str(sbom), "--models", str(REAL_MODELS)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(sbom.read_text())
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    names = {c["name"].lower() for c in document["components"]}
    assert {"onnxruntime", "magika", "spacy", "model-signing"} <= names
    models = {c["name"]: c for c in document["components"] if c["type"] == "machine-learning-model"}
    assert set(models) == {"image_classifier", "text_classifier"}
    for name, component in models.items():
        files = {f["name"]: f["hashes"][0] for f in component["components"]}
        for part in ("onnx/model.onnx", "keras/model.keras", "checksums.txt", "model.sig"):
            path = REAL_MODELS / name / part
            digest = files[f"models/{name}/{part}"]
            assert digest == {"alg": "SHA-256", "content": file_sha256(path)}


def test_sbom_refuses_a_drifted_model(tmp_path: Path) -> None:
    import shutil

    models = Path(shutil.copytree(REAL_MODELS, tmp_path / "models"))
    (models / "text_classifier" / "onnx" / "model.onnx").write_bytes(b"not the model")
    sbom = tmp_path / "sbom.json"
    sbom.write_text('{"bomFormat": "CycloneDX", "components": []}')
    done = subprocess.run(
        [sys.executable, "-m", "thunderline.ml.sbom", str(sbom), "--models", str(models)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and "differs from the registry" in done.stderr
