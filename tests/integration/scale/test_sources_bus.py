"""``thunderline sync --bus``: a folder synced through the RabbitMQ workers (real RabbitMQ,
PostgreSQL and S3), a second pass sends nothing, an edit becomes version 2."""

from __future__ import annotations

import os
import time

from tests.integration.scale.conftest import Cluster


def test_sync_over_the_workers_then_an_edit(cluster: Cluster) -> None:
    files = cluster.make_files(12)
    for path in files:
        os.utime(path, (time.time() - 3600,) * 2)
    worker = cluster.worker("classify,package,collect")
    worker.wait_ready()
    folder = str(files[0].parent)
    first = cluster.cli("sync", folder, "--json")
    assert '"new": 12' in first.stdout and '"voxels": 12' in first.stdout, first.stdout
    assert cluster.voxel_count() == 12

    second = cluster.cli("sync", folder, "--json")
    assert '"unchanged": 12' in second.stdout and '"submitted": 0' in second.stdout

    files[0].write_text("edited through the workers\n")
    os.utime(files[0], (time.time() - 3600,) * 2)
    third = cluster.cli("sync", folder, "--json")
    assert '"changed": 1' in third.stdout and '"voxels": 1' in third.stdout, third.stdout
    assert cluster.voxel_count() == 13
    listing = cluster.cli("sources", "entries", folder, "--versions", "--json")
    versions = [line for line in listing.stdout.splitlines() if files[0].name in line]
    assert len(versions) == 2
