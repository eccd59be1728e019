"""Archive members re-enter ``classify``: bounded queues must not deadlock on that cycle.

A real :class:`~thunderline.runtime.Runtime` on the in-process bus with ``TL_QUEUE_MAX=4``
takes zip and tar archives of more members than the bound, plus plain files, all submitted at
once. ``package`` publishes each archive's members back into ``classify`` while ``classify``
publishes into ``package``: with both queues blocking at their bound (the engine before the
fix) the run stopped for good with both queues full. It must finish with every member stored.
"""

from __future__ import annotations

import asyncio
import io
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from thunderline.classify.stage import ClassifyStage
from thunderline.classify.walk import iter_candidates
from thunderline.config import OverflowPolicy, Settings
from thunderline.events import DLQ_OVERLOAD, VOXEL_CREATED, CloudEvent
from thunderline.objects.factory import open_object_store
from thunderline.runtime import Runtime
from thunderline.voxel.stage import PackageStage
from thunderline.voxel.store import VoxelStore

QUEUE_MAX = 4
ARCHIVES = 6  # 3 zip, 3 tar
MEMBERS = 12  # 3 x QUEUE_MAX members in each
PLAIN = 20
#: Generous: the run takes a few seconds; a deadlock never ends.
TIMEOUT_S = 60.0


def _tree(root: Path) -> int:
    """Write the archives and plain files under ``root``; returns the voxels they make."""
    root.mkdir(parents=True)
    for a in range(ARCHIVES):
        members = {
            f"doc-{a}-{m}.txt": f"member {m} of archive {a}: unique text\n".encode()
            for m in range(MEMBERS)
        }
        if a % 2 == 0:
            with zipfile.ZipFile(root / f"bundle-{a}.zip", "w") as zf:
                for name, data in members.items():
                    zf.writestr(name, data)
        else:
            with tarfile.open(root / f"bundle-{a}.tar", "w") as tf:
                for name, data in members.items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    for p in range(PLAIN):
        (root / f"plain-{p}.txt").write_text(f"plain file {p}, its own text\n")
    return ARCHIVES * (1 + MEMBERS) + PLAIN


@pytest.mark.parametrize("policy", [OverflowPolicy.BLOCK, OverflowPolicy.DROP_OLDEST])
def test_archive_members_reentering_classify_do_not_deadlock(
    tmp_path: Path, make_settings: Callable[..., Settings], policy: OverflowPolicy
) -> None:
    """The run ends: ``block`` stores everything, ``drop_oldest`` stores or dead-letters each."""
    expected = _tree(tmp_path / "tree")
    settings = make_settings(
        queue_max=QUEUE_MAX,
        overflow_policy=policy,
        shutdown_timeout_s=5.0,
    )
    stored: Counter[str] = Counter()  # voxels by kind: bundle, doc (member) or plain
    dropped: Counter[str] = Counter()  # dead-lettered, by kind of the original artifact

    def on_terminal(event: CloudEvent) -> None:
        if event.type == VOXEL_CREATED:
            stored[event.data["artifact"]["name"].split("-")[0]] += 1
        else:
            assert event.type == DLQ_OVERLOAD, event.data.get("error")
            dropped[event.data["original"]["data"]["artifact"]["name"].split("-")[0]] += 1

    store = open_object_store(settings)
    # classify (Magika names the archives) straight to package: the shortest cycle
    stages = [
        ClassifyStage(settings, store, available_stages=["package"]),
        PackageStage(settings, store),
    ]

    async def run() -> int:
        async with Runtime(settings, on_terminal=on_terminal, stages=stages) as runtime:

            async def ingest() -> int:
                n = await runtime.submit_files(iter_candidates([tmp_path / "tree"]))
                await runtime.wait_idle()
                return n

            return await asyncio.wait_for(ingest(), TIMEOUT_S)

    submitted = asyncio.run(run())
    assert submitted == ARCHIVES + PLAIN
    with VoxelStore(settings) as voxels:
        assert voxels.count() == sum(stored.values())
    if policy is OverflowPolicy.BLOCK:
        assert dropped == {}
        assert sum(stored.values()) == expected
    # nothing vanishes: every archive and file submitted is stored or dead-lettered, and so is
    # every member of each stored archive (drop_oldest may drop one on its way from classify
    # to package, never on its way back into classify)
    assert stored["bundle"] + dropped["bundle"] == ARCHIVES
    assert stored["plain"] + dropped["plain"] == PLAIN
    assert stored["doc"] + dropped["doc"] == MEMBERS * stored["bundle"]
