"""Test-only fault injection: the real spaCy worker with deliberate faults on marked texts.

The pool starts it through its ``worker_command`` override (``python fault_worker.py ARGS``).
Texts containing a marker misbehave on purpose; every other text is processed by the real
worker code unchanged.

- ``@@HANG@@``: ignore SIGALRM and sleep: a worker stuck where its own timeout cannot fire.
- ``@@GARBAGE@@``: answer with a line that is not JSON.
- ``@@CRASH@@``: die at once (exit code 13) while holding the document.
- ``@@SLOW@@``: take 1.8 s (within the worker's own timeout when that is 2 s), then answer.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

from thunderline.nlp import worker as real

_original_handle = real.Worker.handle_line
_original_write = real.Worker.write


def handle_line(self: real.Worker, line: bytes) -> dict[str, Any]:
    if b"@@HANG@@" in line:
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(3600)
    if b"@@CRASH@@" in line:
        os._exit(13)
    if b"@@GARBAGE@@" in line:
        return {"__garbage__": True}
    if b"@@SLOW@@" in line:
        time.sleep(1.8)
    return _original_handle(self, line)


def write(self: real.Worker, payload: dict[str, Any]) -> None:
    if payload.get("__garbage__"):
        self.out.write(b"<<this is not a JSON line>>\n")
        self.out.flush()
        return
    _original_write(self, payload)


real.Worker.handle_line = handle_line  # type: ignore[method-assign]
real.Worker.write = write  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(real.main())
