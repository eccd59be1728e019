"""The walk streams candidates into the pipeline, and a path it cannot read is one DLQ record
(the run goes on with the rest)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from thunderline.classify import walk
from thunderline.classify.walk import Candidate, iter_candidates
from thunderline.config import Settings
from thunderline.report import RunReport
from thunderline.runtime import Runtime


def test_an_unlistable_folder_is_one_error_candidate_and_the_walk_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "locked", "z"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f.txt").write_text(name)
    real_scandir = os.scandir

    def scandir(target: int | str) -> object:  # injected fault: EACCES on one folder
        if isinstance(target, int) and os.readlink(f"/proc/self/fd/{target}").endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(target)

    monkeypatch.setattr(walk.os, "scandir", scandir)
    found = list(iter_candidates([tmp_path], recursive=True))
    assert [(c.path.relative_to(tmp_path).as_posix(), c.error is not None) for c in found] == [
        ("a/f.txt", False),
        ("locked", True),
        ("z/f.txt", False),
    ]


def test_the_walk_is_lazy(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"{i}.txt").write_text("x")
    stream = iter_candidates([tmp_path])
    assert isinstance(stream, Iterator)
    first = next(stream)
    assert isinstance(first, Candidate) and first.path.name == "0.txt"


async def test_walk_errors_and_missing_arguments_are_dlq_records_not_the_end_of_the_run(
    tmp_path: Path, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "ok.bin").write_bytes(os.urandom(100))
    (tmp_path / "in" / "locked").mkdir()
    (tmp_path / "after.bin").write_bytes(os.urandom(100))
    real_scandir = os.scandir

    def scandir(target: int | str) -> object:  # injected fault
        if isinstance(target, int) and os.readlink(f"/proc/self/fd/{target}").endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(target)

    monkeypatch.setattr(walk.os, "scandir", scandir)
    long_name = tmp_path / ("x" * 300)  # longer than NAME_MAX: cannot even be looked up
    report = RunReport()
    settings = make_settings(enable_ml_pipeline=False)
    paths = [tmp_path / "in", long_name, tmp_path / "after.bin"]
    async with Runtime(settings, on_terminal=report.add) as runtime:
        submitted = await runtime.submit_files(iter_candidates(paths, recursive=True))
        await runtime.wait_idle(60)
    assert submitted == 4
    fates = sorted((Path(r.path or "?").name, r.outcome, r.reason) for r in report.records)
    assert fates == [
        ("after.bin", "ok", None),
        ("locked", "dlq", "unreadable"),
        ("ok.bin", "ok", None),
        ("x" * 300, "dlq", "unreadable"),
    ]
    locked = next(r for r in report.dlq if r.reason == "unreadable" and "locked" in (r.path or ""))
    assert locked.stage == "classify"
