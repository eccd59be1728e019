"""NLP sidecar: spaCy in supervised worker processes behind a JSON-lines protocol.

Modules: :mod:`.worker` (the worker program), :mod:`.pool` (the supervised pool),
:mod:`.breaker` (circuit breaker), :mod:`.result` (``NlpResult`` schema 1.0), :mod:`.lang`
(offline language detection), :mod:`.extract` (text extraction), :mod:`.stage` (the ``nlp``
stage), :mod:`.doctor` (``thunderline doctor`` rows).

This package imports lazily: the worker process imports only what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from thunderline.nlp.doctor import doctor_report
    from thunderline.nlp.pool import NlpPool, PoolConfig
    from thunderline.nlp.result import NlpResult
    from thunderline.nlp.stage import NlpStage

_LAZY = {
    "NlpPool": "thunderline.nlp.pool",
    "PoolConfig": "thunderline.nlp.pool",
    "NlpResult": "thunderline.nlp.result",
    "NlpStage": "thunderline.nlp.stage",
    "doctor_report": "thunderline.nlp.doctor",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'thunderline.nlp' has no attribute {name!r}")


__all__ = ["NlpPool", "NlpResult", "NlpStage", "PoolConfig", "doctor_report"]
