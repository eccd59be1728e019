"""Honest results: the shipped Fashion-MNIST model says "no confident label" for a logo and a
rabbit (best score below its registry threshold, raw scores kept) and names clothing it knows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from thunderline import testing as kit
from thunderline.config import Settings
from thunderline.events import INFERENCE_COMPLETED
from thunderline.ml.stage import InferStage
from thunderline.objects.local import LocalObjectStore

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"


async def test_logo_is_not_clothing_and_a_bag_is_a_bag(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(onnx_enabled=True, onnx_model_dir=ROOT / "models", onnx_threadpool=1)
    store = LocalObjectStore(settings.home / "objects")
    files = {
        "python-logo.jpg": "jpeg",
        "rabbitmq-bunny.png": "png",
        "fashion-mnist-bag.png": "png",
        "fashion-mnist-dress.png": "png",
    }
    events = {
        name: kit.classified(
            store, (EXAMPLES / name).read_bytes(), kind, name=name, route=["infer"]
        )
        for name, kind in files.items()
    }
    ends = await kit.run_stages([InferStage(settings, store)], list(events.values()), timeout_s=120)
    assert {e.type for e in ends} == {INFERENCE_COMPLETED}
    got = {e.data["artifact"]["name"]: e.data["inference"] for e in ends}
    for name in ("python-logo.jpg", "rabbitmq-bunny.png"):
        assert got[name]["confident"] is False and got[name]["threshold"] == 0.7
        assert got[name]["top_k"][0]["score"] < 0.7  # the raw scores are kept
    assert got["fashion-mnist-bag.png"]["confident"] is True
    assert got["fashion-mnist-bag.png"]["top_k"][0]["label"] == "bag"
    assert got["fashion-mnist-dress.png"]["top_k"][0]["label"] == "dress"
    assert got["fashion-mnist-dress.png"]["confident"] is True
