"""The classify stage's dead-letter series exist at 0 before the first dead letter.

A counter series first scraped at 1 has no earlier sample, so ``rate()`` and ``increase()``
never count that first dead letter: the DLQ-rate alert would miss every kind of refusal the
first time it happens.
"""

from __future__ import annotations

import subprocess
import sys

from thunderline import errors
from thunderline.obs import metrics


def test_every_admission_and_classify_reason_is_named() -> None:
    kinds = [errors.PathEscapeError, errors.ArtifactTooLargeError, errors.HardLinkError]
    kinds += [errors.ArtifactNotFoundError, errors.UnreadableArtifactError, errors.ClassifyError]
    assert {kind.reason for kind in kinds} <= set(metrics.CLASSIFY_DLQ_REASONS)


def test_a_fresh_process_exposes_them_at_zero() -> None:
    """In a new interpreter (this one's counters have moved), before anything is dead-lettered."""
    code = (
        "from prometheus_client import generate_latest\n"
        "from thunderline.obs import metrics\n"
        "print(generate_latest(metrics.REGISTRY).decode())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    for reason in metrics.CLASSIFY_DLQ_REASONS:
        assert f'thunderline_dlq_total{{reason="{reason}",stage="classify"}} 0.0' in out
