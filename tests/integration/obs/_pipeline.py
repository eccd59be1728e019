"""Helpers of the observability tests: the Prometheus tools, and a real pipeline run whose
inputs include bad files that really fail (symlink escapes, files too large, files gone)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from thunderline.classify.walk import Candidate
from thunderline.config import Settings
from thunderline.events import CloudEvent
from thunderline.journal import Journal
from thunderline.runtime import Runtime

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"

#: Peer files that exercise every stage: text (nlp), images (infer), code, documents, archive.
GOOD = (
    "basic/txt",
    "basic/markdown",
    "basic/html",
    "basic/png",
    "basic/jpeg",
    "basic/python",
    "basic/json",
    "basic/csv",
    "basic/pdf",
    "basic/zip",
)
#: Bigger than the run's max_artifact_bytes: dead-lettered as too_large.
MAX_BYTES = 512 * 1024


def find_tool(name: str) -> str:
    """Path of a Debian-packaged binary; skip (or fail under TL_TEST_REQUIRE_SERVICES=1)."""
    path = shutil.which(name)
    if path is None:
        message = (
            f"{name} not installed (apt-get install -y --no-install-recommends "
            "prometheus prometheus-alertmanager)"
        )
        if os.environ.get("TL_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message} (TL_TEST_REQUIRE_SERVICES=1: tools are required)")
        pytest.skip(message)
    return path


@dataclass
class Inputs:
    """Candidates to submit and the names/paths that must never show up in a label."""

    good: list[Candidate] = field(default_factory=list)
    bad: list[Candidate] = field(default_factory=list)
    secrets: set[str] = field(default_factory=set)


def build_inputs(peer_data: Path, folder: Path, *, copies: int = 1, bad_every: int = 10) -> Inputs:
    """Real good files from the peer corpus, and one bad input per ``bad_every`` good ones."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [p for rel in GOOD for p in sorted((peer_data / rel).iterdir()) if p.is_file()]
    inputs = Inputs()
    outside = folder.parent / "outside-secret.txt"
    outside.write_text("not under the ingest root\n", encoding="utf-8")
    kinds = ("escape", "too_large", "gone")
    n_bad = 0
    for copy in range(copies):
        for i, source in enumerate(sources):
            target = folder / f"c{copy}-{i}-{source.name}"
            shutil.copy(source, target)
            inputs.good.append(Candidate(target, folder))
            inputs.secrets |= {target.name, str(target)}
            if len(inputs.good) % bad_every:
                continue
            kind = kinds[n_bad % len(kinds)]
            bad = folder / f"bad-{n_bad}-{kind}.bin"
            if kind == "escape":
                bad.symlink_to(outside)
            elif kind == "too_large":
                bad.write_bytes(os.urandom(MAX_BYTES + 1))
            # "gone": never created (listed, then deleted before admission)
            inputs.bad.append(Candidate(bad, folder))
            inputs.secrets |= {bad.name, str(bad)}
            n_bad += 1
    return inputs


def run_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(onnx_enabled=True, max_artifact_bytes=MAX_BYTES, spacy_workers=1)


async def run_pipeline(settings: Settings, candidates: list[Candidate]) -> list[CloudEvent]:
    """Run the real pipeline over ``candidates``; the terminal records (voxels and DLQ)."""
    terminal: list[CloudEvent] = []
    async with Runtime(settings, on_terminal=terminal.append) as runtime:
        await runtime.submit_files(candidates)
        await runtime.wait_idle(240)
    return terminal


def journal_identities(settings: Settings) -> set[str]:
    """Every id, correlation id, name and path the run's events carry."""
    found: set[str] = set()
    for event in Journal(settings.home).iter_events():
        found |= {event.id, event.correlationid or event.id}
        artifact = event.data.get("artifact") if isinstance(event.data, dict) else None
        if isinstance(artifact, dict):
            for key in ("name", "path", "sha256", "uri", "key"):
                value = artifact.get(key)
                if isinstance(value, str) and value:
                    found.add(value)
    return {value for value in found if len(value) > 3}
