"""The supervised extraction workers: real files, and parsers that hang, spin, crash or
balloon (injected on purpose). Each fault costs its one file a typed error; the next file
is extracted by a fresh worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from thunderline import malloc
from thunderline.extract.errors import (
    ExtractCrashError,
    ExtractionError,
    ExtractMemoryError,
    ExtractTimeoutError,
)
from thunderline.extract.pool import ExtractPool, Job, PoolConfig, worker_command
from thunderline.obs import metrics
from thunderline.testing.corpus import build_corpus

FAULTS = "thunderline.testing.extract_faults"


def _config(**overrides: object) -> PoolConfig:
    base: dict[str, object] = {
        "workers": 1,
        "memory_mb": 768,
        "progress_timeout_s": 1.5,
        "timeouts": {"text": 4.0},
        "max_files": 100,
        "plugins": (FAULTS,),
    }
    base.update(overrides)
    return PoolConfig(**base)  # type: ignore[arg-type]


def _job(path: Path, extractor: str, n: int = 0) -> Job:
    return Job(id=f"job-{extractor}-{n}", path=str(path), extractor=extractor, kind="text")


@pytest.fixture
def some_file(tmp_path: Path) -> Path:
    path = tmp_path / "a.txt"
    path.write_text("Marie Curie was born in Warsaw.", encoding="utf-8")
    return path


async def _pid(pool: ExtractPool, path: Path, n: int) -> int:
    return int((await pool.extract(_job(path, "pid", n))).text)


async def test_real_files_are_extracted_in_a_worker(tmp_path: Path) -> None:
    samples = build_corpus(tmp_path / "corpus")
    pool = ExtractPool(_config(timeouts={"text": 60.0, "document": 60.0}))
    try:
        docx = await pool.extract(
            Job(
                id="1",
                path=str(tmp_path / "corpus" / "report.docx"),
                extractor="docx",
                kind="document",
            )
        )
        assert "Marie Curie" in docx.text
        assert docx.metadata.title == "Curie report"
        md = await pool.extract(
            Job(
                id="2",
                path=str(tmp_path / "corpus" / "notes.md"),
                extractor="markdown",
                kind="text",
            )
        )
        assert md.headings[0].text == "Contents"
        assert "##" not in md.text
        assert len(pool.pids) == 1 and pool.pids[0] != os.getpid()
    finally:
        await pool.close()
    assert samples


async def test_a_hanging_parser_costs_one_file(some_file: Path) -> None:
    pool = ExtractPool(_config())
    try:
        before = await _pid(pool, some_file, 0)
        with pytest.raises(ExtractTimeoutError) as caught:
            await pool.extract(_job(some_file, "hang"))
        assert caught.value.reason == "timeout"
        assert caught.value.details["timeout"] == "progress"
        after = await _pid(pool, some_file, 1)
        assert after != before  # the stuck worker was killed and replaced
    finally:
        await pool.close()


async def test_a_parser_that_reports_progress_forever_hits_the_total_timeout(
    some_file: Path,
) -> None:
    pool = ExtractPool(_config(timeouts={"text": 2.5}))
    try:
        with pytest.raises(ExtractTimeoutError) as caught:
            await pool.extract(_job(some_file, "busy"))
        assert caught.value.details["timeout"] == "total"
        assert caught.value.details["limit_s"] == 2.5
        assert (await pool.extract(_job(some_file, "plain"))).text.startswith("Marie Curie")
    finally:
        await pool.close()


async def test_a_crashing_parser_costs_one_file(some_file: Path) -> None:
    pool = ExtractPool(_config())
    crashes = metrics.sample(
        "thunderline_extract_errors_total", {"extractor": "crash", "reason": "crash"}
    )
    try:
        with pytest.raises(ExtractCrashError) as caught:
            await pool.extract(_job(some_file, "crash"))
        assert caught.value.reason == "crash"
        assert "SIGSEGV" in str(caught.value)
        assert (await pool.extract(_job(some_file, "plain"))).text.startswith("Marie Curie")
    finally:
        await pool.close()
    after = metrics.sample(
        "thunderline_extract_errors_total", {"extractor": "crash", "reason": "crash"}
    )
    assert after == crashes + 1


async def test_a_ballooning_parser_meets_the_memory_cap(some_file: Path) -> None:
    pool = ExtractPool(_config(memory_mb=512, timeouts={"text": 60.0}, progress_timeout_s=30.0))
    try:
        with pytest.raises(ExtractMemoryError) as caught:
            await pool.extract(_job(some_file, "balloon"))
        assert caught.value.reason == "out_of_memory"
        assert (await pool.extract(_job(some_file, "plain"))).text.startswith("Marie Curie")
    finally:
        await pool.close()


async def test_workers_restart_after_n_files(some_file: Path) -> None:
    pool = ExtractPool(_config(max_files=2))
    try:
        pids = [await _pid(pool, some_file, n) for n in range(5)]
    finally:
        await pool.close()
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


@pytest.mark.skipif(not malloc.available(), reason="needs glibc's malloc_trim")
async def test_a_worker_gives_a_files_freed_heap_back_and_keeps_serving(some_file: Path) -> None:
    async def run(trim_mb: float) -> tuple[int, int, list[int]]:
        pool = ExtractPool(_config(malloc_trim_mb=trim_mb))
        try:
            during = int((await pool.extract(_job(some_file, "fragment"))).text)
            after = int((await pool.extract(_job(some_file, "rss"))).text)
            pids = [await _pid(pool, some_file, n) for n in range(3)]
        finally:
            await pool.close()
        return during, after, pids

    during, after, pids = await run(0.0)  # trim after every file
    assert after < during - 30 * 2**20, (during, after)  # the ~48 MB freed went back
    assert len(set(pids)) == 1  # a trim is not a restart: the same worker serves on
    kept_during, kept_after, _ = await run(-1.0)  # never trim: glibc keeps it
    assert kept_after > kept_during - 8 * 2**20, (kept_during, kept_after)


async def test_a_parser_error_is_typed_and_keeps_the_worker(tmp_path: Path) -> None:
    bad = tmp_path / "bad.docx"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    good = tmp_path / "a.txt"
    good.write_text("fine", encoding="utf-8")
    pool = ExtractPool(_config(timeouts={"text": 30.0, "document": 30.0}))
    try:
        before = await _pid(pool, good, 0)
        with pytest.raises(ExtractionError) as caught:
            await pool.extract(Job(id="x", path=str(bad), extractor="docx", kind="document"))
        assert caught.value.reason == "extraction"
        assert await _pid(pool, good, 1) == before
    finally:
        await pool.close()


async def test_a_result_out_of_bounds_is_this_files_extraction_error(some_file: Path) -> None:
    """The worker builds its result without validating it; the supervisor's parse refuses a
    value out of its bounds as the extractor's failure on this file, and keeps the worker."""
    pool = ExtractPool(_config())
    try:
        before = await _pid(pool, some_file, 0)
        with pytest.raises(ExtractionError) as caught:
            await pool.extract(_job(some_file, "invalid"))
        assert caught.value.reason == "extraction"
        assert "width" in str(caught.value)
        assert caught.value.details["error_type"] == "ValidationError"
        assert await _pid(pool, some_file, 1) == before
    finally:
        await pool.close()


def test_the_worker_command_carries_the_trim_threshold() -> None:
    assert worker_command(512, (), 16.0)[-2:] == ["--trim-mb", "16.0"]
    assert "--trim-mb" not in worker_command(512)
