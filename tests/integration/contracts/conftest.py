"""The backends every contract suite runs against: one list of factories per protocol.

A new backend passes or fails the same tests by adding one entry: ``BUS_FACTORIES`` (event
bus), ``OBJECT_STORE_FACTORIES`` (payload store), ``VOXEL_BACKENDS`` (voxel database). A
factory takes the pytest request, so it can ask for the service fixtures it needs
(``request.getfixturevalue("s3_url")``, ``"pg_schema_url"``, a broker URL...); a service that is
absent skips its parameter, or fails it under ``TL_TEST_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from thunderline.bus.base import EventBus
from thunderline.bus.memory import MemoryBus
from thunderline.config import Settings
from thunderline.objects.base import ObjectStore
from thunderline.objects.local import LocalObjectStore
from thunderline.objects.s3 import S3ObjectStore

# ---- event bus ----------------------------------------------------------------------------------
BusFactory = Callable[[pytest.FixtureRequest], Awaitable[EventBus]]


async def _memory_bus(request: pytest.FixtureRequest) -> EventBus:
    return MemoryBus(maxsize=4096)


#: Every EventBus implementation (name, factory). The RabbitMQ bus adds its entry here.
BUS_FACTORIES: list[tuple[str, BusFactory]] = [("memory", _memory_bus)]


@pytest.fixture(params=[factory for _, factory in BUS_FACTORIES], ids=[n for n, _ in BUS_FACTORIES])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[EventBus]:
    opened = await request.param(request)
    try:
        yield opened
    finally:
        await opened.close()


# ---- object store -------------------------------------------------------------------------------
@dataclass
class StoreUnderTest:
    """A store, and how to corrupt a stored payload behind its back (fault injection)."""

    store: ObjectStore
    corrupt: Callable[[str, bytes], None]


def _local_store(request: pytest.FixtureRequest) -> StoreUnderTest:
    root: Path = request.getfixturevalue("tmp_path") / "objects"
    store = LocalObjectStore(root)

    def corrupt(sha256: str, data: bytes) -> None:
        path = store.local_path(sha256)
        assert path is not None
        path.chmod(0o644)
        path.write_bytes(data)

    return StoreUnderTest(store, corrupt)


def _s3_store(request: pytest.FixtureRequest) -> StoreUnderTest:
    url = request.getfixturevalue("s3_url")
    store = S3ObjectStore(url, endpoint_url=request.getfixturevalue("s3_endpoint"))

    def corrupt(sha256: str, data: bytes) -> None:
        key = f"{store.prefix}sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}"
        store.client.put_object(Bucket=store.bucket, Key=key, Body=data)

    return StoreUnderTest(store, corrupt)


OBJECT_STORE_FACTORIES: list[tuple[str, Callable[[pytest.FixtureRequest], StoreUnderTest]]] = [
    ("local", _local_store),
    ("s3", _s3_store),
]


@pytest.fixture(
    params=[factory for _, factory in OBJECT_STORE_FACTORIES],
    ids=[n for n, _ in OBJECT_STORE_FACTORIES],
)
def object_store(request: pytest.FixtureRequest) -> StoreUnderTest:
    made: StoreUnderTest = request.param(request)
    return made


# ---- voxel store --------------------------------------------------------------------------------
def _sqlite(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(inline_payload_max_bytes=1024)


def _postgresql(request: pytest.FixtureRequest, make_settings: Callable[..., Settings]) -> Settings:
    url = request.getfixturevalue("pg_schema_url")
    return make_settings(database_url=url, inline_payload_max_bytes=1024)


VOXEL_BACKENDS: list[
    tuple[str, Callable[[pytest.FixtureRequest, Callable[..., Settings]], Settings]]
] = [("sqlite", _sqlite), ("postgresql", _postgresql)]


@pytest.fixture(
    params=[factory for _, factory in VOXEL_BACKENDS], ids=[n for n, _ in VOXEL_BACKENDS]
)
def voxel_settings(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> Settings:
    settings: Settings = request.param(request, make_settings)
    return settings


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
