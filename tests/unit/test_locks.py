"""The hash-pinned locks: no machine-local paths, a hash on every pin, and the `convert` lock
pinning every shared package exactly as requirements.lock does (it is seeded from it)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\]+)", re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    return {k.lower(): v for k, v in PIN.findall((REPO / name).read_text())}


def test_locks_hash_every_pin_and_name_no_local_index() -> None:
    for name in ("requirements.lock", "requirements-convert.lock"):
        text = (REPO / name).read_text()
        assert "file://" not in text and "--index-url" not in text and "--find-links" not in text
        blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", text)
        pinned = [b for b in blocks if PIN.match(b)]
        assert pinned and all("--hash=sha256:" in b for b in pinned), name


def test_convert_lock_adds_tensorflow_and_keeps_the_shared_pins() -> None:
    base, convert = _pins("requirements.lock"), _pins("requirements-convert.lock")
    assert {k: convert.get(k) for k in base} == base
    assert {"tensorflow-cpu", "keras", "tf2onnx"} <= set(convert) - set(base)
    assert {"model-signing", "pyopenssl", "cyclonedx-bom"} <= set(base)
