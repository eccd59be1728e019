"""The garbage collector after start-up: the long-lived heap is frozen once per process.

A started pipeline holds a large heap that lives as long as the process (modules, the
Magika and ONNX sessions' Python side, SQLAlchemy's compiled statements, pydantic's
schemas). Python's cyclic collector walks all of it at every full collection, which the
steady allocation of every artifact (events, voxels, index rows) keeps triggering: in a
300-file run of the default pipeline that was 0.59 of the runtime process's 8.1 CPU-s.
:func:`gc.freeze` moves the objects alive once start-up is done into a permanent
generation the collector no longer walks; what is allocated afterwards is collected as
before. Objects frozen in a reference cycle are never freed, so it is done once per
process (a test process that starts many pipelines freezes only the first one's heap).
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_frozen = False


def freeze_after_startup() -> bool:
    """Collect once, then freeze the surviving heap (the first call of the process only).

    Returns:
        True when this call froze the heap, False when an earlier call did.
    """
    global _frozen
    with _lock:
        if _frozen:
            return False
        gc.collect()
        gc.freeze()
        _frozen = True
        return True
