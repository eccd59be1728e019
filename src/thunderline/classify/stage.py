"""The classify stage: admit each artifact, store its bytes once, classify it with Magika, route it.

Input: ``ui.command.ingest.received``. Output: ``system.ingest.classified`` with
``classification`` and the routing slip ``route`` (ARCHITECTURE §1). Artifacts given by local
path are admitted (:mod:`.admission`) and streamed into the content-addressed object store;
artifacts already stored (archive members, uploads) are classified from the store. A batch of
files goes to Magika in one call, off the event loop.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from thunderline.classify.admission import check_size, open_input
from thunderline.classify.classifier import (
    DISABLED,
    Classification,
    MagikaClassifier,
    Source,
)
from thunderline.config import Settings
from thunderline.errors import (
    ArtifactError,
    ArtifactNotFoundError,
    ArtifactTooLargeError,
    MalformedEventError,
    ThunderlineError,
    UnreadableArtifactError,
)
from thunderline.events import INGEST_CLASSIFIED, CloudEvent
from thunderline.flow.stage import Outcome, Stage, StageOptions
from thunderline.objects.base import ObjectStore, sha_from_ref
from thunderline.obs import metrics

#: Stages that need the ML pipeline switch (TL_ENABLE_ML_PIPELINE).
ML_STAGES = frozenset({"nlp", "infer"})


def build_route(
    classification: Classification, routes: dict[str, list[str]], available: Iterable[str]
) -> list[str]:
    """The stages after classify: by label, else by group, else ``*``; only available ones."""
    chosen = (
        routes.get(classification.label) or routes.get(classification.group) or routes.get("*", [])
    )
    allowed = set(available)
    return [stage for stage in chosen if stage in allowed]


class ClassifyStage(Stage):
    """Magika classification of every artifact (the first stage of every route)."""

    name = "classify"

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        options: StageOptions | None = None,
        *,
        available_stages: Iterable[str] = (),
    ) -> None:
        super().__init__(
            options
            or StageOptions.from_settings(
                settings,
                batch_size=settings.classify_batch_size,
                batch_timeout_s=settings.classify_batch_timeout_s,
                concurrency=settings.classify_concurrency,
            )
        )
        self.settings = settings
        self.store = store
        available = set(available_stages)
        if not settings.enable_ml_pipeline:
            available -= ML_STAGES
        self.available = available
        self.classifier: MagikaClassifier | None = None

    async def setup(self) -> None:
        if self.settings.enable_ml_pipeline:
            self.classifier = await asyncio.to_thread(
                MagikaClassifier, self.settings.magika_prediction_mode
            )

    async def handle_batch(self, events: Sequence[CloudEvent]) -> list[Outcome]:
        return await asyncio.to_thread(self._classify_batch, list(events))

    # ---- work (runs in a worker thread) ---------------------------------------------------
    def _admit_and_store(
        self, event: CloudEvent, spooled: list[Path], opened: list[int]
    ) -> tuple[dict[str, Any], Source]:
        """Admit and store one artifact; return it and what Magika classifies.

        A local input is opened once (:func:`.admission.open_input`) and read only through
        that descriptor; Magika then reads the stored copy (local store) or the same
        descriptor (remote store; kept open in ``opened`` until the batch is classified),
        never the path again.
        """
        artifact = event.data.get("artifact")
        if not isinstance(artifact, dict):
            raise MalformedEventError("ingest event has no artifact object")
        artifact = dict(artifact)
        ref = artifact.get("payload_ref")
        if ref:  # already in the store (archive member, upload)
            sha = sha_from_ref(str(ref))
            local = self.store.local_path(sha)
            if local is None:
                if not self.store.exists(sha):
                    raise ArtifactNotFoundError(f"payload {ref} is not in the object store")
                local = self._spool(sha, spooled)
            return artifact, local
        path_s = artifact.get("path")
        if not path_s:
            raise MalformedEventError("artifact has neither path nor payload_ref")
        root_s = artifact.get("root")
        path = Path(str(path_s))
        limit = self.settings.max_artifact_bytes
        admitted = open_input(path, Path(str(root_s)) if root_s else None)
        keep = False
        try:
            try:
                check_size(admitted, limit)
            except ArtifactTooLargeError as exc:
                # classify through the descriptor anyway (Magika reads only head and tail),
                # so the DLQ record says what it was; never read it whole.
                if self.classifier is not None:
                    found = self.classifier.classify_sources([admitted.fd])[0]
                    if isinstance(found, Classification):
                        exc.details["classification"] = found.to_dict()
                raise
            try:
                stored = self.store.put_fd(admitted.fd, max_bytes=limit)
            except PermissionError as exc:
                raise UnreadableArtifactError(f"{path}: permission denied") from exc
            except OSError as exc:
                raise UnreadableArtifactError(f"{path}: {exc.strerror or exc}") from exc
            artifact.update(size=stored.size, sha256=stored.sha256, payload_ref=stored.ref)
            local = self.store.local_path(stored.sha256)
            if local is not None:
                return artifact, local
            keep = True
            opened.append(admitted.fd)
            return artifact, admitted.fd
        finally:
            if not keep:
                admitted.close()

    def _spool(self, sha: str, spooled: list[Path]) -> Path:
        """A verified local copy of a remote payload for Magika (removed after the batch)."""
        data = self.store.get_bytes(sha)
        handle = tempfile.NamedTemporaryFile(prefix="tl-classify-", delete=False)  # noqa: SIM115
        with handle:
            handle.write(data)
        spooled.append(Path(handle.name))
        return Path(handle.name)

    def _classify_batch(self, events: list[CloudEvent]) -> list[Outcome]:
        started = time.perf_counter()
        outcomes: list[Outcome] = [RuntimeError("unset")] * len(events)
        admitted: list[tuple[int, dict[str, Any], Source]] = []
        spooled: list[Path] = []
        opened: list[int] = []
        for i, event in enumerate(events):
            try:
                artifact, local = self._admit_and_store(event, spooled, opened)
            except (ThunderlineError, ValueError) as exc:
                err = exc if isinstance(exc, ThunderlineError) else MalformedEventError(str(exc))
                metrics.MAGIKA_CLASSIFY_ERRORS.labels(err.reason).inc()
                outcomes[i] = err
                continue
            admitted.append((i, artifact, local))

        try:
            outcomes = self._classify_admitted(events, outcomes, admitted, started)
        finally:
            for spool in spooled:
                spool.unlink(missing_ok=True)
            for fd in opened:
                os.close(fd)
        return outcomes

    def _classify_admitted(
        self,
        events: list[CloudEvent],
        outcomes: list[Outcome],
        admitted: list[tuple[int, dict[str, Any], Source]],
        started: float,
    ) -> list[Outcome]:
        if self.classifier is None:
            results: list[Classification | ThunderlineError] = [DISABLED] * len(admitted)
        else:
            results = self.classifier.classify_sources([local for _, _, local in admitted])
        elapsed = time.perf_counter() - started
        per_file = elapsed / max(len(events), 1)
        for (i, artifact, _local), result in zip(admitted, results, strict=True):
            if isinstance(result, ThunderlineError):
                metrics.MAGIKA_CLASSIFY_ERRORS.labels(result.reason).inc()
                outcomes[i] = result
                continue
            metrics.MAGIKA_CLASSIFY_DURATION.observe(per_file)
            metrics.MAGIKA_CLASSIFIED.labels(result.group).inc()
            classification = {**result.to_dict(), "latency_ms": round(per_file * 1000, 3)}
            route = build_route(result, self.settings.routes, self.available)
            event = events[i]
            out = self.advance(
                event,
                INGEST_CLASSIFIED,
                {"artifact": artifact, "classification": classification},
                route=route,
            )
            outcomes[i] = [out]
        return outcomes


__all__ = ["ML_STAGES", "ArtifactError", "ClassifyStage", "build_route"]
