"""The trained models the repository ships (models/): trusted, equivalent, and right on samples.

These run without TensorFlow: the registry gate (checksums, the committed public key's
signature, permissions), ONNX Runtime on the committed held-out samples (``sample_io.json``,
``heldout.npz``), the committed ``VAL_REPORT.json``, and the example images of ``examples/``.
The Keras side is re-validated by tests/unit/convert (``convert`` extra) and ``make test``.
"""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from tests.unit.ml._helpers import REAL_MODELS, REPO

from thunderline.ml import ModelRegistry
from thunderline.ml.preprocess import payload_input
from thunderline.ml.trust import (
    SHIPPED_PUBLIC_KEY,
    model_folder_of,
    verify_checksums,
    verify_signature,
)

REGISTRY = ModelRegistry(REAL_MODELS)
NAMES = ["image_classifier", "text_classifier"]


def test_registry_lists_the_trained_models_all_verified() -> None:
    assert [e.name for e in REGISTRY.list_models()] == NAMES
    results = REGISTRY.verify()
    assert [(r.name, r.status) for r in results] == [(n, "ok") for n in NAMES], results
    for entry in REGISTRY.list_models():
        folder = model_folder_of(REGISTRY.path_of(entry))
        assert verify_checksums(folder) >= 6
        verify_signature(folder, SHIPPED_PUBLIC_KEY)
        for part in ("keras/model.keras", "onnx/model.onnx", "sample_io.json", "README.md"):
            assert (folder / part).is_file(), part


@pytest.mark.parametrize("name", NAMES)
def test_committed_validation_report_passes(name: str) -> None:
    folder = model_folder_of(REGISTRY.path_of(REGISTRY.entry(name)))
    report = json.loads((folder / "VAL_REPORT.json").read_text())
    assert report["model"] == name and report["status"] == "PASS"
    assert report["tolerance"] == 1e-4 and report["max_abs_diff"] <= 1e-4
    assert report["top1_agreement"] == 1.0 and report["heldout_vectors"] > 0
    assert report["heldout_accuracy_keras"] == report["heldout_accuracy_onnx"]
    for key in ("keras_version", "tensorflow_version", "onnx_version", "onnxruntime_version"):
        assert report[key]
    assert report["opset"] == 17 and report["timestamp"]


@pytest.mark.parametrize("name", NAMES)
def test_sample_io_reproduces_through_onnx_runtime(name: str) -> None:
    entry = REGISTRY.entry(name)
    folder = model_folder_of(REGISTRY.path_of(entry))
    sample_io = json.loads((folder / "sample_io.json").read_text())
    model = REGISTRY.get_model(name)
    try:
        x = np.array([s["input"] for s in sample_io["samples"]], dtype=sample_io["dtype"])
        got = model.infer(x.astype(np.int64 if entry.kind == "text" else np.float32))
        probabilities = got["probabilities"]
    finally:
        model.close()
    want = np.array([s["output"] for s in sample_io["samples"]])
    np.testing.assert_allclose(probabilities, want, atol=1e-4)
    labels = [entry.labels[i] for i in probabilities.argmax(axis=1)]
    truth = [s["label"] for s in sample_io["samples"]]
    assert np.mean([a == b for a, b in zip(labels, truth, strict=True)]) >= 0.8


@pytest.mark.parametrize("name", NAMES)
def test_held_out_accuracy_is_what_the_readme_says(name: str) -> None:
    entry = REGISTRY.entry(name)
    folder = model_folder_of(REGISTRY.path_of(entry))
    with np.load(folder / "heldout.npz") as data:
        x, y = data["x"], data["y"]
    model = REGISTRY.get_model(name)
    try:
        x = x.astype(np.int64 if entry.kind == "text" else np.float32)
        predicted = np.concatenate(
            [model.infer(x[i : i + 100])["probabilities"].argmax(1) for i in range(0, len(x), 100)]
        )
    finally:
        model.close()
    accuracy = float(np.mean(predicted == y))
    floor = {"image_classifier": 0.85, "text_classifier": 0.9}[name]
    assert accuracy >= floor
    assert f"{entry.extra['heldout_accuracy']:.4f}" in (folder / "README.md").read_text()


@pytest.mark.parametrize(
    ("file", "label"),
    [
        ("fashion-mnist-ankle-boot.png", "ankle boot"),
        ("fashion-mnist-bag.png", "bag"),
        ("fashion-mnist-dress.png", "dress"),
        ("fashion-mnist-sneaker.png", "sneaker"),
        ("fashion-mnist-trouser.png", "trouser"),
    ],
)
def test_example_images_get_their_label(file: str, label: str) -> None:
    entry = REGISTRY.entry("image_classifier")
    data = (REPO / "examples" / file).read_bytes()
    model = REGISTRY.get_model("image_classifier")
    try:
        scores = model.infer(payload_input(data, entry).tensor)["probabilities"][0]
    finally:
        model.close()
    assert entry.labels[int(scores.argmax())] == label and scores.max() > 0.9


def test_a_light_background_photo_is_inverted_to_the_dark_contract() -> None:
    from io import BytesIO

    from PIL import Image, ImageOps

    entry = REGISTRY.entry("image_classifier")
    dark = (REPO / "examples" / "fashion-mnist-trouser.png").read_bytes()
    light = BytesIO()
    ImageOps.invert(Image.open(BytesIO(dark)).convert("L")).resize((112, 112)).save(light, "PNG")
    model = REGISTRY.get_model("image_classifier")
    try:
        scores = model.infer(payload_input(light.getvalue(), entry).tensor)["probabilities"][0]
    finally:
        model.close()
    assert entry.labels[int(scores.argmax())] == "trouser"


def test_text_model_tells_a_shell_script_and_a_manual_page() -> None:
    entry = REGISTRY.entry("text_classifier")
    model = REGISTRY.get_model("text_classifier")
    manpage = b'.\\" Manual page\n.TH ZGREP 1 "2024" "gzip"\n.SH NAME\nzgrep \\- search compressed files\n.SH SYNOPSIS\n.B zgrep\n[ grep_options ]\n.SH DESCRIPTION\n'
    try:
        for data, label in (
            ((REPO / "examples" / "zgrep.sh").read_bytes(), "source"),
            (manpage * 3, "manpage"),
        ):
            scores = model.infer(payload_input(data, entry).tensor)["probabilities"][0]
            assert entry.labels[int(scores.argmax())] == label
    finally:
        model.close()


def test_public_key_is_shipped_outside_the_models_and_no_private_key_is_committed() -> None:
    assert SHIPPED_PUBLIC_KEY.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert not SHIPPED_PUBLIC_KEY.is_relative_to(REAL_MODELS)
    assert not (REAL_MODELS / "signing_key.pub").exists()  # never trusted from there
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False
    ).stdout.split(b"\0")
    for rel in filter(None, tracked):
        path = REPO / rel.decode()
        if path.suffix in {".pem", ".key"}:
            assert "PRIVATE KEY" not in path.read_text(errors="replace"), path
    for path in REAL_MODELS.rglob("*"):
        if path.is_file() and path.suffix in {".pem", ".key", ".pub", ".txt", ".md", ".json"}:
            assert "PRIVATE KEY" not in path.read_text(errors="replace"), path
