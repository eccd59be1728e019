"""``thunderline worker`` with one injected fault: classify crashes the whole process (exit 70)
on any artifact whose name starts with ``poison`` -- a poison message, every time it is seen."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from thunderline.classify.stage import ClassifyStage
from thunderline.cli import main
from thunderline.events import CloudEvent
from thunderline.flow.stage import Outcome

_handle_batch = ClassifyStage.handle_batch


async def _crash_on_poison(self: ClassifyStage, events: Sequence[CloudEvent]) -> list[Outcome]:
    for event in events:
        name = str((event.data.get("artifact") or {}).get("name") or "")
        if name.startswith("poison"):
            sys.stderr.write(f"fault_worker: crashing on {name}\n")
            sys.stderr.flush()
            os._exit(70)
    return await _handle_batch(self, events)


ClassifyStage.handle_batch = _crash_on_poison  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv = ["thunderline", *sys.argv[1:]]
    main()
