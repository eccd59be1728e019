"""prometheus_client multiprocess mode: one folder of sample files shared by a process tree.

prometheus_client decides between in-memory and file-backed values when a metric is
constructed, so :mod:`thunderline.obs.metrics` calls :func:`configure_from_environ` before it
declares anything. The rules:

- ``PROMETHEUS_MULTIPROC_DIR`` already set (inherited from the parent that started this
  process, or set by the operator): write samples there, never wipe it.
- else ``TL_METRICS_MULTIPROC_DIR`` set: this process is the **root** of the tree (``ingest``,
  ``worker``, ``serve``). It wipes the folder (samples of an earlier run would be summed in
  otherwise), creates it, and exports ``PROMETHEUS_MULTIPROC_DIR`` so every child inherits it.
- else: single-process mode (in-memory values, the default).

When a child exits, its parent calls :func:`mark_process_dead` so that its live gauges
(``livesum``/``livemax``/``livemin``) stop counting; its counters and histograms stay summed
(a SIGKILLed worker's counts are kept). Use one folder per root process.

This module does not import prometheus_client at import time (the mode is chosen first).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: The variable prometheus_client reads.
PROMETHEUS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Thunderline's setting naming the folder the root process owns (and wipes at start).
TL_ENV = "TL_METRICS_MULTIPROC_DIR"

_state: dict[str, object] = {"dir": None, "root": False}


def _wipe(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for entry in folder.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def configure_from_environ() -> Path | None:
    """Choose the mode from the environment (see the module docstring); returns the folder."""
    inherited = os.environ.get(PROMETHEUS_ENV) or os.environ.get(PROMETHEUS_ENV.lower())
    if inherited:
        folder = Path(inherited)
        folder.mkdir(parents=True, exist_ok=True)
        _state.update(dir=folder, root=False)
    elif os.environ.get(TL_ENV):
        folder = Path(os.environ[TL_ENV]).resolve()
        _wipe(folder)
        os.environ[PROMETHEUS_ENV] = str(folder)
        _state.update(dir=folder, root=True)
    else:
        _state.update(dir=None, root=False)
        return None
    # prometheus_client may already be imported (its default is chosen at its import): switch
    # the value class it hands to metrics constructed from now on.
    from prometheus_client import values

    if values.ValueClass is values.MutexValue:
        values.ValueClass = values.MultiProcessValue()
    return folder


def directory() -> Path | None:
    """The shared sample folder, or ``None`` in single-process mode."""
    folder = _state["dir"]
    return folder if isinstance(folder, Path) else None


def enabled() -> bool:
    """True when metrics are shared across processes (a multiprocess folder is set)."""
    return directory() is not None


def is_root() -> bool:
    """True in the process that owns (and wiped) the folder."""
    return bool(_state["root"])


def mark_process_dead(pid: int) -> None:
    """Drop an exited child's live-gauge files (no-op in single-process mode)."""
    folder = directory()
    if folder is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(folder))
