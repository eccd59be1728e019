"""Test-only fault injection: the real spaCy worker with deliberate faults on marked texts.

The pool starts it through its ``worker_command`` override (``python fault_worker.py ARGS``).
Texts containing a marker misbehave on purpose, whether they come alone or in a batch (the
whole ``nlp.pipe`` call misbehaves then, as a real pipeline would); every other text is
processed by the real worker code unchanged.

- ``@@HANG@@``: ignore the timer signal and sleep: a worker blocked without using CPU, where
  its own timeout cannot fire (only the pool's wall-clock backstop catches it).
- ``@@SPIN@@``: ignore the timer signal and spin: a worker burning CPU where its own timeout
  cannot fire (the pool's CPU budget catches it).
- ``@@GARBAGE@@``: answer with a line that is not JSON for that document.
- ``@@CRASH@@``: die at once (exit code 13) while holding the document.
- ``@@SLOW@@``: take 1.8 s per marked document (within the worker's own timeout when that is
  2 s), then answer.
- ``@@RAISE@@``: the pipeline raises (a ``nlp`` error for that document).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from thunderline.nlp import worker as real

_original_analyze = real.Analyzer.analyze_many
_original_encode = real.RequestLoop.encode


def analyze_many(self: real.Analyzer, requests: Sequence[real.Request]) -> list[dict[str, Any]]:
    texts = [r.text for r in requests]
    if any("@@HANG@@" in t for t in texts):
        signal.signal(real.TIMER_SIGNAL, signal.SIG_IGN)
        time.sleep(3600)
    if any("@@SPIN@@" in t for t in texts):
        signal.signal(real.TIMER_SIGNAL, signal.SIG_IGN)
        while True:
            pass
    if any("@@CRASH@@" in t for t in texts):
        os._exit(13)
    if any("@@RAISE@@" in t for t in texts):
        raise RuntimeError("injected pipeline failure")
    for text in texts:
        if "@@SLOW@@" in text:
            time.sleep(1.8)
    results = _original_analyze(self, requests)
    for request, result in zip(requests, results, strict=True):
        if "@@GARBAGE@@" in request.text:
            result["__garbage__"] = True
    return results


def encode(self: real.Worker, payload: dict[str, Any]) -> bytes:
    if payload.get("__garbage__"):
        return b"<<this is not a JSON line>>\n"
    return _original_encode(self, payload)


real.Analyzer.analyze_many = analyze_many  # type: ignore[method-assign]
real.RequestLoop.encode = encode  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(real.main())
