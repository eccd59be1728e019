"""A scale-out cluster on loopback for fault tests: real RabbitMQ, PostgreSQL and S3.

``cluster`` gives each test its own RabbitMQ queue prefix (on the session's vhost), its own
PostgreSQL schema and its own S3 bucket, starts ``thunderline worker`` subprocesses on demand
(each with a private, empty ``TL_HOME``: workers keep nothing locally) and submits files from
the test process through the location-free submitter.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import func, select

from thunderline.classify.walk import Candidate
from thunderline.config import Settings, load_settings
from thunderline.outcomes import OutcomeRecord, OutcomeStore
from thunderline.voxel.db import make_engine
from thunderline.voxel.tables import voxels
from thunderline.worker.settle import final_outcomes
from thunderline.worker.submit import Submitter, wait_outcomes

FAULT_WORKER = Path(__file__).with_name("fault_worker.py")


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if "ready: stages" in self.text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"worker not ready after {timeout_s}s:\n{self.text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout_s)


@dataclass
class Cluster:
    tmp: Path
    env: dict[str, str]
    workers: list[WorkerProc] = field(default_factory=list)

    # ---- settings and processes ---------------------------------------------------------
    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            k.removeprefix("TL_").lower(): v for k, v in self.env.items() if k.startswith("TL_")
        }
        values.update(overrides)
        values["home"] = self.tmp / "submitter"
        return load_settings(**values)

    def worker(
        self, stages: str, *, env: dict[str, str] | None = None, fault: bool = False
    ) -> WorkerProc:
        n = len(self.workers)
        home = self.tmp / f"worker{n}"
        log = self.tmp / f"worker{n}.log"
        full_env = {**os.environ, **self.env, "TL_HOME": str(home), **(env or {})}
        entry = [str(FAULT_WORKER)] if fault else ["-m", "thunderline.cli"]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, *entry, "worker", "--stages", stages],
                env=full_env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = WorkerProc(proc, log)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(10)

    # ---- files, submission, outcomes ----------------------------------------------------
    def make_files(self, n: int, prefix: str = "doc") -> list[Path]:
        folder = self.tmp / "input"
        folder.mkdir(exist_ok=True)
        paths = []
        for i in range(n):
            path = folder / f"{prefix}{i:05d}.txt"
            path.write_text(f"artifact {prefix} {i}: some small text for the scale-out tests\n")
            paths.append(path)
        return paths

    async def submit(self, paths: list[Path], **overrides: Any) -> list[str]:
        async with Submitter(self.settings(**overrides)) as submitter:
            return await submitter.submit_all(Candidate(p, p.parent) for p in paths)

    async def wait(self, ids: list[str], timeout_s: float = 120.0) -> list[OutcomeRecord]:
        store = await asyncio.to_thread(OutcomeStore, self.settings())
        try:
            return await wait_outcomes(store, ids, timeout_s=timeout_s)
        finally:
            store.close()

    def records(self, ids: list[str]) -> list[OutcomeRecord]:
        """Every raw outcome record of these submissions (duplicates included)."""
        with OutcomeStore(self.settings()) as store:
            return store.by_correlations(ids)

    def outcome_count(self, ids: list[str]) -> int:
        """Artifacts of these submissions that have a final outcome."""
        return len(final_outcomes(self.records(ids)))

    def voxel_rows(self) -> list[tuple[str, str]]:
        engine = make_engine(self.settings().resolved_database_url)
        try:
            with engine.connect() as conn:
                return [(r[0], r[1]) for r in conn.execute(select(voxels.c.id, voxels.c.source))]
        finally:
            engine.dispose()

    def cli(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``thunderline ARGS`` against this cluster (its own empty home)."""
        env = {**os.environ, **self.env, "TL_HOME": str(self.tmp / "cli"), **(env or {})}
        done = subprocess.run(
            [sys.executable, "-m", "thunderline.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"thunderline {' '.join(args)}: {done.returncode}\n{done.stderr}")
        return done

    def counts(self) -> dict[str, int]:
        with OutcomeStore(self.settings()) as store:
            return store.counts()

    def voxel_count(self) -> int:
        engine = make_engine(self.settings().resolved_database_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(voxels)).scalar_one())
        finally:
            engine.dispose()


def via_proxy(url: str, port: int) -> str:
    """``url`` with its host:port replaced by 127.0.0.1:``port`` (credentials kept)."""
    parts = urlsplit(url)
    creds = parts.netloc.rpartition("@")[0]
    netloc = f"{creds}@127.0.0.1:{port}" if creds else f"127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or default_port


@pytest.fixture
def cluster(
    tmp_path: Path,
    rabbitmq_url: str,
    bus_prefix: str,
    pg_schema_url: str,
    s3_url: str,
    s3_endpoint: str,
) -> Iterator[Cluster]:
    env = {
        "TL_BUS_URL": rabbitmq_url,
        "TL_BUS_QUEUE_PREFIX": bus_prefix,
        "TL_DATABASE_URL": pg_schema_url,
        "TL_OBJECT_STORE_URL": s3_url,
        "TL_S3_ENDPOINT_URL": s3_endpoint,
        "TL_ENABLE_ML_PIPELINE": "false",  # the cheap stages: admission + package (fast CI)
        "TL_LOG_LEVEL": "INFO",
        "TL_SHUTDOWN_TIMEOUT_S": "20",
    }
    c = Cluster(tmp_path, env)
    try:
        yield c
    finally:
        c.stop_all()
