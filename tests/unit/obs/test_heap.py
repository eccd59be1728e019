"""The heap frozen after start-up: once per process, and what comes later is still collected."""

from __future__ import annotations

import gc
import weakref

from thunderline.obs import heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_freeze_once_then_new_cycles_are_still_collected() -> None:
    heap.freeze_after_startup()  # this process may have started a runtime already
    assert heap.freeze_after_startup() is False  # never twice
    assert gc.get_freeze_count() > 0
    node = _Node()
    gone = weakref.ref(node)
    del node
    gc.collect()
    assert gone() is None  # objects made after the freeze are collected as before
