"""The trained models in the real pipeline (what `make demo` shows): Fashion-MNIST example
images get their labels, and text gets the text model's result beside spaCy's."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from tests.unit.ml._helpers import REAL_MODELS, REPO

from thunderline.classify import iter_candidates
from thunderline.config import Settings
from thunderline.events import CloudEvent
from thunderline.runtime import Runtime

IMAGES = {
    "fashion-mnist-ankle-boot.png": "ankle boot",
    "fashion-mnist-bag.png": "bag",
    "fashion-mnist-dress.png": "dress",
    "fashion-mnist-sneaker.png": "sneaker",
    "fashion-mnist-trouser.png": "trouser",
}
TEXTS = {"idle-history.txt": "changelog", "zgrep.sh": "source"}


async def test_examples_through_the_pipeline_with_the_trained_models(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for name in [*IMAGES, *TEXTS]:
        shutil.copy(REPO / "examples" / name, folder / name)
    settings = make_settings(onnx_enabled=True, onnx_model_dir=REAL_MODELS, spacy_workers=1)
    terminal: list[CloudEvent] = []
    async with Runtime(settings, on_terminal=terminal.append) as runtime:
        await runtime.submit_files(iter_candidates([folder]))
        await runtime.wait_idle(300)
    results = {e.data["artifact"]["name"]: e.data for e in terminal}
    assert set(results) == {*IMAGES, *TEXTS}, [e.type for e in terminal]
    for name, label in IMAGES.items():
        inference = results[name]["inference"]
        assert inference["model"] == "image_classifier" and inference["version"] == "2.0.0"
        assert inference["top_k"][0]["label"] == label, (name, inference["top_k"])
    for name, label in TEXTS.items():
        inference = results[name]["inference"]
        assert inference["model"] == "text_classifier"
        assert inference["top_k"][0]["label"] == label, (name, inference["top_k"])
    # prose goes through spaCy first; its result stays beside the text model's
    assert results["idle-history.txt"]["nlp"]["entities"]
