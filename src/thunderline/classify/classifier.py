"""Magika wrapper: one loaded model per process; paths or bytes in, :class:`Classification` out.

Results are per item (Magika's own style): a batch never fails because one file did; each
position holds either a :class:`Classification` or the typed error for that file.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from thunderline.errors import (
    ArtifactNotFoundError,
    ClassifyError,
    ThunderlineError,
    UnreadableArtifactError,
)
from thunderline.eventdata import Classification

_MODES = {"high-confidence", "medium-confidence", "best-guess"}

#: What can be classified: a path the process owns (a stored copy) or an open descriptor.
Source = Path | int


#: The classification used when the ML pipeline is switched off (TL_ENABLE_ML_PIPELINE=false).
DISABLED = Classification(
    label="unknown",
    group="unknown",
    mime="application/octet-stream",
    score=0.0,
    is_text=False,
    description="not classified (ML pipeline disabled)",
    dl_label="undefined",
    overwrite_reason="ml_disabled",
    model="none",
)

_lock = threading.Lock()
_run_locks: dict[str, threading.Lock] = {}


@functools.cache
def _magika(mode: str) -> Any:
    from magika import Magika, PredictionMode

    return Magika(prediction_mode=PredictionMode(mode.replace("-", "_")))


class MagikaClassifier:
    """Thread-safe access to the process-wide Magika model for one prediction mode."""

    def __init__(self, prediction_mode: str = "high-confidence") -> None:
        if prediction_mode not in _MODES:
            raise ThunderlineError(
                f"unknown Magika prediction mode {prediction_mode!r}; use one of {sorted(_MODES)}"
            )
        self.prediction_mode = prediction_mode
        with _lock:
            self._m = _magika(prediction_mode)
        self.model_name: str = self._m.get_model_name()
        # one Magika call at a time: its session already uses every core; concurrent classify
        # batches overlap their admission and storage work with the running call instead
        self._run_lock = _run_locks.setdefault(prediction_mode, threading.Lock())

    @property
    def version(self) -> str:
        """The Magika package version that made the labels (recorded in each voxel)."""
        return str(self._m.get_module_version())

    def _convert(self, result: Any, what: str) -> Classification | ThunderlineError:
        status = str(result.status.value if hasattr(result.status, "value") else result.status)
        if status == "file_not_found_error":
            return ArtifactNotFoundError(f"{what}: file not found")
        if status == "permission_error":
            return UnreadableArtifactError(f"{what}: permission denied")
        if status != "ok":
            return ClassifyError(f"{what}: Magika status {status}")
        pred = result.prediction
        out = pred.output
        return Classification(
            label=str(out.label),
            group=str(out.group),
            mime=str(out.mime_type),
            score=float(pred.score),
            is_text=bool(out.is_text),
            description=str(out.description),
            dl_label=str(pred.dl.label),
            overwrite_reason=str(pred.overwrite_reason.value),
            model=self.model_name,
        )

    def classify_paths(self, paths: Sequence[Path]) -> list[Classification | ThunderlineError]:
        """Classify files by path (Magika reads only their head and tail)."""
        if not paths:
            return []
        try:
            with self._run_lock:
                results = self._m.identify_paths(list(paths))
        except Exception as exc:  # translate at the boundary
            err = ClassifyError(f"Magika failed on a batch of {len(paths)}: {exc}")
            return [err] * len(paths)
        return [self._convert(r, str(p)) for r, p in zip(results, paths, strict=True)]

    def classify_sources(
        self, sources: Sequence[Source]
    ) -> list[Classification | ThunderlineError]:
        """Classify stored copies (paths, in one batch) and open descriptors (one by one).

        A descriptor is read through a duplicate of it; the caller's descriptor stays open.
        """
        results: list[Classification | ThunderlineError] = [ClassifyError("unset")] * len(sources)
        paths = [(i, s) for i, s in enumerate(sources) if isinstance(s, Path)]
        for (i, _), found in zip(paths, self.classify_paths([p for _, p in paths]), strict=True):
            results[i] = found
        for i, source in enumerate(sources):
            if not isinstance(source, Path):
                results[i] = self.classify_fd(source)
        return results

    def classify_fd(self, fd: int) -> Classification | ThunderlineError:
        """Classify through an open descriptor (Magika seeks in its own duplicate)."""
        what = f"<descriptor {fd}>"
        try:
            with os.fdopen(os.dup(fd), "rb") as stream, self._run_lock:
                result = self._m.identify_stream(stream)
        except Exception as exc:
            return ClassifyError(f"Magika failed on {what}: {exc}")
        return self._convert(result, what)

    def classify_bytes(self, data: bytes) -> Classification | ThunderlineError:
        """Classify in-memory bytes; a Magika failure is returned as a ``ClassifyError``, not raised."""
        try:
            result = self._m.identify_bytes(data)
        except Exception as exc:
            return ClassifyError(f"Magika failed on {len(data)} bytes: {exc}")
        return self._convert(result, "<bytes>")
