"""The batch builder and the time budgets of the NLP pool, without a worker."""

from __future__ import annotations

import asyncio
import collections

from thunderline.nlp.batching import (
    Batch,
    Job,
    answer_limit,
    batch_budget,
    build_batch,
    fair_share,
)
from thunderline.nlp.result import NlpResult


def _jobs(loop: asyncio.AbstractEventLoop, *sizes: int, solo: int | None = None) -> list[Job]:
    return [
        Job(f"d{i}", b"{}", chars, loop.create_future(), solo=i == solo)
        for i, chars in enumerate(sizes)
    ]


def _taker(jobs: list[Job]) -> collections.deque[Job]:
    return collections.deque(jobs)


def test_a_batch_stops_at_the_cap_the_characters_or_a_solo_job() -> None:
    loop = asyncio.new_event_loop()
    try:
        first, *rest = _jobs(loop, 10, 10, 10, 10, 10)
        queue = _taker(rest)
        jobs, carry = build_batch(
            first, lambda: queue.popleft() if queue else None, cap=3, max_chars=100
        )
        assert [j.doc_id for j in jobs] == ["d0", "d1", "d2"] and carry is None
        first, *rest = _jobs(loop, 40, 40, 40)
        queue = _taker(rest)
        jobs, carry = build_batch(
            first, lambda: queue.popleft() if queue else None, cap=9, max_chars=100
        )
        assert (
            [j.doc_id for j in jobs] == ["d0", "d1"] and carry is not None and carry.doc_id == "d2"
        )
        first, *rest = _jobs(loop, 1, 1, 1, solo=2)
        queue = _taker(rest)
        jobs, carry = build_batch(
            first, lambda: queue.popleft() if queue else None, cap=9, max_chars=100
        )
        assert [j.doc_id for j in jobs] == ["d0", "d1"] and carry is not None and carry.solo
    finally:
        loop.close()


def test_jobs_nobody_waits_for_are_skipped() -> None:
    loop = asyncio.new_event_loop()
    try:
        first, gone, kept = _jobs(loop, 1, 1, 1)
        gone.future.set_result(NlpResult.model_construct())
        queue = _taker([gone, kept])
        jobs, carry = build_batch(
            first, lambda: queue.popleft() if queue else None, cap=9, max_chars=100
        )
        assert [j.doc_id for j in jobs] == ["d0", "d2"] and carry is None
    finally:
        loop.close()


def test_fair_share_spreads_a_short_queue_and_budgets_grow_with_characters() -> None:
    assert fair_share(queued=3, workers=2, batch_docs=32) == 2  # 4 documents over 2 workers
    assert fair_share(queued=500, workers=2, batch_docs=32) == 32
    assert fair_share(queued=0, workers=4, batch_docs=32) == 1
    loop = asyncio.new_event_loop()
    try:
        jobs = _jobs(loop, 5_000, 5_000, 5_000)
        assert batch_budget(jobs[:1], 10.0, 12_000) == 10.0  # at least one timeout
        assert batch_budget(jobs, 10.0, 12_000) == 20.0  # 15,000 characters: two chunks' worth
        batch = Batch(collections.deque(jobs), len(jobs), budget_s=20.0)
        assert answer_limit(batch, 12.0) == 32.0  # the first answer of several gets the budget
        batch.answered = 1
        assert answer_limit(batch, 12.0) == 12.0
    finally:
        loop.close()
