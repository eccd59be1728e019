"""Honest results (issue 18 item 7) with the shipped models: each declares what it applies to
(image minimum size and channels; text languages and minimum length) and a confidence
threshold chosen on held-out data. Below the threshold the record says "no confident label"
(raw scores kept); an artifact the model does not apply to is passed on with the reason, not
labelled and not dead-lettered."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from thunderline import testing as kit
from thunderline.config import Settings
from thunderline.events import INFERENCE_COMPLETED, CloudEvent
from thunderline.ml.stage import InferStage
from thunderline.objects.local import LocalObjectStore

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"

GERMAN = (
    "Sehr geehrte Damen und Herren,\n\nvielen Dank fuer Ihre Anfrage vom 3. Maerz. Gerne senden "
    "wir Ihnen unser Angebot fuer die Lieferung von 200 Stuehlen.\n\nMit freundlichen Gruessen\n"
    "Anna Schmidt\n"
)
POEM = (
    "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate:\n"
    "Rough winds do shake the darling buds of May,\nAnd summer's lease hath all too short a date;\n"
)


async def _run(settings: Settings, events: dict[str, CloudEvent]) -> dict[str, CloudEvent]:
    store = LocalObjectStore(settings.home / "objects")
    ends = await kit.run_stages([InferStage(settings, store)], list(events.values()), timeout_s=120)
    return {e.data["artifact"]["name"]: e for e in ends}


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
    ends = await _run(settings, events)
    # the 16x16 logo is under the 28x28 the model declares: passed on with the reason
    logo = ends["python-logo.jpg"]
    assert logo.type != INFERENCE_COMPLETED and "inference" not in logo.data
    [note] = logo.data["notes"]
    assert note["stage"] == "infer"
    assert (
        "image of 16x16 pixels is under the 28x28 minimum of model image_classifier"
        in (note["note"])
    )
    got = {name: e.data["inference"] for name, e in ends.items() if name != "python-logo.jpg"}
    assert {ends[name].type for name in got} == {INFERENCE_COMPLETED}
    bunny = got["rabbitmq-bunny.png"]
    assert bunny["confident"] is False and bunny["threshold"] == 0.7
    assert bunny["top_k"][0]["score"] < 0.7  # the raw scores are kept
    assert got["fashion-mnist-bag.png"]["confident"] is True
    assert got["fashion-mnist-bag.png"]["top_k"][0]["label"] == "bag"
    assert got["fashion-mnist-dress.png"]["top_k"][0]["label"] == "dress"
    assert got["fashion-mnist-dress.png"]["confident"] is True


async def test_text_model_says_no_confident_label_off_its_ground(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(onnx_enabled=True, onnx_model_dir=ROOT / "models", onnx_threadpool=1)
    store = LocalObjectStore(settings.home / "objects")
    texts = {
        "history.txt": (EXAMPLES / "python-history.txt").read_bytes(),
        "letter.txt": GERMAN.encode(),
        "poem.txt": POEM.encode(),
        "short.txt": b"see you at 10\n",
    }
    events = {
        name: kit.classified(store, data, "txt", name=name, route=["infer"])
        for name, data in texts.items()
    }
    ends = await _run(settings, events)
    for name in ("letter.txt", "poem.txt"):  # neither a licence, changelog, readme, manpage
        inference = ends[name].data["inference"]  # nor source: below the held-out threshold
        assert inference["model"] == "text_classifier"
        assert inference["confident"] is False and inference["threshold"] == 0.91
        assert len(inference["top_k"]) == 5 and inference["top_k"][0]["score"] < 0.91
    history = ends["history.txt"].data["inference"]
    assert history["threshold"] == 0.91 and history["confident"] is True
    short = ends["short.txt"]  # under the 64 bytes the model declares
    assert "inference" not in short.data
    assert "text of 13 bytes is under the 64-byte minimum" in short.data["notes"][0]["note"]
