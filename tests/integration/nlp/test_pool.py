"""The worker pool with real workers: restarts, isolation, recycling, breaker, backpressure."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest

from thunderline.config import NlpSettings, SpacySettings
from thunderline.errors import is_retryable
from thunderline.nlp.breaker import BreakerState
from thunderline.nlp.errors import (
    NlpCircuitOpenError,
    NlpCrashError,
    NlpError,
    NlpModelMissingError,
    NlpParseError,
    NlpTimeoutError,
)
from thunderline.nlp.pool import NlpPool, PoolConfig
from thunderline.nlp.result import NlpResult
from thunderline.obs import metrics


def pool_config(workers: int = 2, model: str | None = None, **nlp: Any) -> PoolConfig:
    """A pool of ``workers`` with ``TL_NLP_*`` values ``nlp`` (the rest: the defaults)."""
    spacy = SpacySettings(workers=workers, **({"model": model} if model else {}))
    return PoolConfig(spacy, NlpSettings(**nlp))


BASE = pool_config()
LONG = "The quick brown fox jumps over the lazy dog in New York City. " * 400


async def _wait_busy(pool: NlpPool) -> int:
    for _ in range(500):
        busy = pool.busy_pids()
        if busy:
            return busy[0]
        await asyncio.sleep(0.01)
    raise AssertionError("no worker became busy")


async def test_process_and_batch_over_two_workers() -> None:
    async with NlpPool(BASE) as pool:
        assert len(set(pool.worker_pids())) == 2
        docs = [(f"d{i}", f"Satya Nadella spoke in Seattle on day {i}.") for i in range(12)]
        results = await pool.process_many(docs)
        assert [r.doc_id for r in results if isinstance(r, NlpResult)] == [d for d, _ in docs]
        assert all(any(e.label == "GPE" for e in r.entities) for r in results)  # type: ignore[union-attr]
        assert pool.stats.processed == 12 and pool.stats.failed == 0


async def test_sigkill_mid_document_restarts_worker_and_fails_it_retryably() -> None:
    before = metrics.sample("thunderline_spacy_worker_restarts_total", {"cause": "crash"})
    async with NlpPool(pool_config(chunk_chars=50_000)) as pool:  # one piece, one batch
        task = asyncio.create_task(pool.process("big", LONG))
        victim = await _wait_busy(pool)
        await asyncio.sleep(0.2)
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(NlpCrashError) as caught:
            await task
        assert is_retryable(caught.value)  # the engine, not the pool, tries it again
        assert victim not in pool.worker_pids()
        for _ in range(3000):  # the slot restarts its worker (spaCy loads in a few seconds)
            if len(pool.worker_pids()) == 2:
                break
            await asyncio.sleep(0.01)
        assert len(pool.worker_pids()) == 2
        assert pool.stats.failed == 1 and pool.stats.restarts["crash"] == 1
        again = await pool.process("big", LONG)  # what the engine's retry does
        assert again.doc_id == "big" and len(again.sentences) == 400
    after = metrics.sample("thunderline_spacy_worker_restarts_total", {"cause": "crash"})
    assert after == before + 1


async def test_recycle_after_n_documents() -> None:
    async with NlpPool(pool_config(workers=1, recycle_after=3)) as pool:
        first = pool.worker_pids()
        for i in range(7):
            await pool.process(f"r{i}", "Recycled workers keep memory flat in Oslo.")
        assert pool.stats.restarts["recycle"] == 2
        assert pool.worker_pids() != first


async def test_hung_worker_is_killed_and_the_document_times_out(fault_command: list[str]) -> None:
    # blocked without using CPU: only the wall-clock backstop can catch it
    config = pool_config(workers=1, doc_timeout_s=0.2, doc_wall_timeout_s=0.4)
    async with NlpPool(config, worker_command=fault_command) as pool:
        with pytest.raises(NlpTimeoutError) as caught:
            await pool.process("hang", "this @@HANG@@ forever")
        assert is_retryable(caught.value)
        assert caught.value.details["clock"] == "wall"
        assert pool.stats.restarts["timeout"] == 1
        ok = await pool.process("next", "Life goes on in Madrid.")
        assert ok.doc_id == "next"


async def test_spinning_worker_is_killed_on_its_cpu_budget_before_the_backstop(
    fault_command: list[str],
) -> None:
    # an infinite loop that ignores the worker's own timer: the parent sees the CPU used
    config = pool_config(workers=1, doc_timeout_s=0.2, doc_wall_timeout_s=300.0)
    async with NlpPool(config, worker_command=fault_command) as pool:
        started = time.monotonic()
        with pytest.raises(NlpTimeoutError) as caught:
            await pool.process("spin", "this @@SPIN@@ forever")
        assert caught.value.details["clock"] == "cpu"
        assert time.monotonic() - started < 120  # far below the 300 s wall backstop
        assert pool.stats.restarts == {"timeout": 1}
        ok = await pool.process("next", "Life goes on in Madrid.")
        assert ok.doc_id == "next"


async def test_a_stopped_worker_is_not_killed_by_the_cpu_budget(fault_command: list[str]) -> None:
    # a worker stopped (as when starved of CPU) for longer than its whole answer limit uses
    # no CPU: its document is answered once it runs again, nothing is killed or failed
    config = pool_config(workers=1, doc_timeout_s=0.2, doc_wall_timeout_s=300.0)
    limit = config.answer_timeout_s
    async with NlpPool(config, worker_command=fault_command) as pool:
        task = asyncio.ensure_future(pool.process("slow", "@@SLOW@@ Lisbon, slowly."))
        pid = await _wait_busy(pool)
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(limit + 2.0)
            assert not task.done()
        finally:
            os.kill(pid, signal.SIGCONT)
        result = await asyncio.wait_for(task, 60)
        assert result.doc_id == "slow"
        assert pool.stats.restarts == {} and pool.stats.failed == 0
        assert pool.worker_pids() == [pid]


async def test_malformed_output_is_a_parse_error_not_retried(fault_command: list[str]) -> None:
    async with NlpPool(pool_config(workers=1), worker_command=fault_command) as pool:
        with pytest.raises(NlpParseError) as caught:
            await pool.process("junk", "please answer @@GARBAGE@@")
        assert "not JSON" in str(caught.value)
        assert not is_retryable(caught.value) and pool.stats.restarts["parse"] == 1
        assert (await pool.process("fine", "Rome is in Italy.")).doc_id == "fine"


async def test_breaker_opens_refuses_then_half_open_probe_closes(fault_command: list[str]) -> None:
    config = pool_config(
        workers=1,
        max_retries=0,
        breaker_failures=2,
        breaker_window_s=30,
        breaker_cooldown_s=0.5,
    )
    async with NlpPool(config, worker_command=fault_command) as pool:
        for i in range(2):
            with pytest.raises(NlpCrashError):
                await pool.process(f"c{i}", "@@CRASH@@")
        assert pool.breaker.state is BreakerState.OPEN
        assert metrics.sample("thunderline_spacy_circuit_state") == 2
        with pytest.raises(NlpCircuitOpenError):
            await pool.process("refused", "Vienna is lovely.")
        await asyncio.sleep(0.6)
        probe = await pool.process("probe", "Vienna is lovely.")
        assert probe.doc_id == "probe"
        assert pool.breaker.state is BreakerState.CLOSED
        assert metrics.sample("thunderline_spacy_circuit_state") == 0


async def test_bounded_queue_applies_backpressure() -> None:
    async with NlpPool(pool_config(workers=1, queue_max=2)) as pool:
        tasks = [asyncio.create_task(pool.process(f"q{i}", LONG[:6000])) for i in range(6)]
        depths = []
        for _ in range(20):
            depths.append(pool.queue_depth)
            await asyncio.sleep(0.02)
        assert max(depths) <= 2
        waiting = sum(not t.done() for t in tasks)
        assert waiting >= 4  # held back by the bound, not lost
        results = await asyncio.gather(*tasks)
        assert sorted(r.doc_id for r in results) == [f"q{i}" for i in range(6)]


async def test_prefetch_sends_past_the_recycle_count_never() -> None:
    async with NlpPool(pool_config(workers=1, recycle_after=3)) as pool:
        docs = [(f"p{i}", f"Prefetched document {i} mentions Berlin.") for i in range(7)]
        results = await pool.process_many(docs)
        assert [r.doc_id for r in results if isinstance(r, NlpResult)] == [d for d, _ in docs]
        assert pool.stats.restarts["recycle"] == 2 and pool.stats.resent == 0


async def test_answer_clock_starts_when_the_worker_can_start_the_document(
    fault_command: list[str],
) -> None:
    # two 1.8 s documents in flight at once: 3.6 s in all, more than the 3.2 s answer timeout
    # of one document, but each gets its own clock from the previous answer
    config = pool_config(workers=1, doc_timeout_s=2.0)
    async with NlpPool(config, worker_command=fault_command) as pool:
        results = await pool.process_many([("s1", "@@SLOW@@ one"), ("s2", "@@SLOW@@ two")])
        assert [r.doc_id for r in results if isinstance(r, NlpResult)] == ["s1", "s2"]
        assert pool.stats.restarts == {} and pool.stats.failed == 0


@pytest.mark.parametrize(
    ("marker", "error", "cause", "restarts"),
    [
        ("@@HANG@@", NlpTimeoutError, "timeout", 2),
        ("@@CRASH@@", NlpCrashError, "crash", 2),
        ("@@GARBAGE@@", NlpParseError, "parse", 1),
    ],
)
async def test_a_failing_document_in_a_batch_is_isolated_the_others_resent_not_failed(
    fault_command: list[str], marker: str, error: type[Exception], cause: str, restarts: int
) -> None:
    # one batch of three; a crash or hang inside nlp.pipe names no document: all three are
    # resent one per batch, and only the guilty one fails (a garbled answer names its doc)
    config = pool_config(workers=1, doc_timeout_s=0.3, doc_wall_timeout_s=0.6)
    async with NlpPool(config, worker_command=fault_command) as pool:
        docs = [
            ("before", "Porto is by the sea."),
            ("bad", f"misbehave {marker} now"),
            ("after", "Meanwhile Lisbon stays sunny."),
        ]
        before, bad, after = await pool.process_many(docs)
        assert isinstance(bad, error)
        for got, doc_id in ((before, "before"), (after, "after")):
            assert isinstance(got, NlpResult) and got.doc_id == doc_id
        assert pool.stats.resent >= 1
        assert pool.stats.failed == 1
        assert dict(pool.stats.restarts) == {cause: restarts}


async def test_pipeline_error_in_a_batch_fails_only_its_document(fault_command: list[str]) -> None:
    async with NlpPool(pool_config(workers=1), worker_command=fault_command) as pool:
        docs = [(f"ok{i}", f"Document {i} is about Oslo.") for i in range(3)]
        docs.insert(1, ("boom", "this one @@RAISE@@ s"))
        results = await pool.process_many(docs)
        assert isinstance(results[1], NlpError) and "injected pipeline failure" in str(results[1])
        assert [r.doc_id for r in results if isinstance(r, NlpResult)] == ["ok0", "ok1", "ok2"]
        assert pool.stats.restarts == {} and pool.stats.resent == 0  # the worker stayed up


async def test_crashing_document_goes_alone_its_neighbours_succeed(
    fault_command: list[str],
) -> None:
    # the crashing text is isolated; sent again (as the engine retries) it crashes alone
    async with NlpPool(pool_config(workers=1), worker_command=fault_command) as pool:
        docs = [("c", "@@CRASH@@ again"), *[(f"n{i}", f"Neighbour {i} in Kyiv.") for i in range(4)]]
        results = await pool.process_many(docs)
        assert isinstance(results[0], NlpCrashError)
        assert all(isinstance(r, NlpResult) for r in results[1:])
        with pytest.raises(NlpCrashError):
            await pool.process("c", "@@CRASH@@ again")
        assert pool.stats.failed == 2


async def test_missing_pipeline_fails_start() -> None:
    pool = NlpPool(pool_config(workers=1, model="no_such_spacy_pipeline"))
    with pytest.raises(NlpModelMissingError, match="pip install no-such-spacy-pipeline"):
        await pool.start()
    assert pool.worker_pids() == []


async def test_worker_runs_batches_within_the_document_and_character_budget() -> None:
    config = pool_config(workers=1, batch_docs=4, batch_chars=2_000, queue_max=64)
    async with NlpPool(config) as pool:
        short = [(f"s{i}", f"Short note {i} from Accra.") for i in range(12)]
        results = await pool.process_many(short)
        sizes = [r.batch_docs for r in results if isinstance(r, NlpResult)]
        assert len(sizes) == 12 and max(sizes) > 1 and max(sizes) <= 4
        wide = [(f"w{i}", f"Wide text number {i} about Lagos. " * 30) for i in range(6)]
        results = await pool.process_many(wide)  # ~1,000 chars each: two fit in 2,000
        assert all(isinstance(r, NlpResult) and r.batch_docs <= 2 for r in results)
        alone = await pool.process("big", "One text longer than the budget, in Quito. " * 60)
        assert alone.batch_docs == 1 and alone.chunks == 1


async def test_long_text_in_chunks_merges_exact_offsets() -> None:
    paragraphs = [
        f"On day {i} Maria Garcia flew from Madrid to Buenos Aires with Google. "
        f"The United Nations met in Geneva on {i} March.\n\n"
        for i in range(200)
    ]
    text = "".join(paragraphs)  # ~24,000 characters
    config = pool_config(chunk_chars=2_000, batch_chars=6_000)
    async with NlpPool(config) as pool:
        whole = await pool.process("long", text)
        assert whole.doc_id == "long" and whole.chunks > 10 and whole.chars == len(text)
        assert not whole.truncated
        assert len(whole.entities) > 400 and len(whole.sentences) >= 400
        for span in [*whole.entities, *whole.noun_chunks, *whole.sentences]:
            assert text[span.start : span.end] == span.text
        assert {"Madrid", "Geneva"} <= {e.text for e in whole.entities}
        assert [e.start for e in whole.entities] == sorted(e.start for e in whole.entities)
        cut = await pool.process("cut", text[:10_000])
        assert cut.chars == 10_000
    async with NlpPool(
        pool_config(1, chunk_chars=2_000, batch_chars=6_000, max_chars=5_000)
    ) as pool:
        bounded = await pool.process("bounded", text)
        assert bounded.truncated and bounded.chars == 5_000
        assert all(e.end <= 5_000 for e in bounded.entities)


async def test_failing_chunk_fails_the_document(fault_command: list[str]) -> None:
    text = "Harmless words in Tallinn. " * 200 + "@@RAISE@@ " + "More words in Riga. " * 200
    config = pool_config(chunk_chars=2_000)
    async with NlpPool(config, worker_command=fault_command) as pool:
        with pytest.raises(NlpError, match="injected pipeline failure"):
            await pool.process("doc", text)
        assert (await pool.process("next", "Vilnius is fine.")).doc_id == "next"
