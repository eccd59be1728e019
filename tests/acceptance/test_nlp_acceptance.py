"""NLP soak: 1,000 real ~1 KB documents through the engine and the worker pool, memory flat.

The RSS of the parent and of every worker is sampled while the documents flow; after a
warm-up of 200 documents no process may grow by 10% or more (spaCy's ``memory_zone`` frees
what each document adds to the vocabulary and string store).
"""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import Callable

import psutil
import pytest

from thunderline.bus.memory import MemoryBus
from thunderline.config import Settings
from thunderline.events import NLP_PROCESSED, CloudEvent
from thunderline.extract.stage import ExtractStage
from thunderline.flow.engine import Pipeline
from thunderline.nlp.stage import NlpStage
from thunderline.objects.local import LocalObjectStore
from thunderline.testing import classified
from thunderline.testing.samples import text_corpus

DOCS = 1000
WARM_UP = 200


def _rss(pid: int) -> int | None:
    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return None


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_soak_1000_documents_memory_flat(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(spacy_workers=2)
    store = LocalObjectStore(settings.home / "objects")
    events = [
        classified(
            store,
            text.encode("utf-8"),
            name="doc.txt",
            source="test://soak",
            route=["extract", "nlp"],
        )
        for text in text_corpus(DOCS, 1024)
    ]
    finished: collections.Counter[str] = collections.Counter()
    entities = 0

    def on_terminal(event: CloudEvent) -> None:
        nonlocal entities
        finished[event.type] += 1
        if event.type == NLP_PROCESSED:
            entities += len(event.data["nlp"]["entities"])

    stage = NlpStage(settings, store)
    pipeline = Pipeline(
        MemoryBus(), [ExtractStage(settings, store), stage], on_terminal=on_terminal
    )
    samples: list[tuple[int, dict[int, int]]] = []

    async def sample() -> None:
        while True:
            pids = [os.getpid(), *stage.pool.worker_pids()]
            rss = {pid: value for pid in pids if (value := _rss(pid)) is not None}
            samples.append((sum(finished.values()), rss))
            await asyncio.sleep(0.25)

    await pipeline.start()
    sampler = asyncio.create_task(sample())
    try:
        for event in events:
            await pipeline.submit(event)
        await pipeline.wait_idle(200)
        await asyncio.sleep(0.3)  # one more sample at the end
    finally:
        sampler.cancel()
        worker_pids = stage.pool.worker_pids()
        restarts = dict(stage.pool.stats.restarts)
        await pipeline.stop()

    assert finished == {NLP_PROCESSED: DOCS}
    assert entities > DOCS  # real documents: names, dates, organisations
    assert restarts == {} and len(worker_pids) == 2  # same processes all along: no recycling
    baseline = next(rss for done, rss in samples if done >= WARM_UP)
    final = samples[-1][1]
    growth = {pid: final[pid] / baseline[pid] - 1 for pid in baseline if pid in final}
    assert set(growth) == {os.getpid(), *worker_pids}
    report = {pid: f"{baseline[pid] >> 20} MB -> {final[pid] >> 20} MB" for pid in growth}
    print(f"soak RSS after warm-up -> end: {report}")
    assert all(g < 0.10 for g in growth.values()), report
