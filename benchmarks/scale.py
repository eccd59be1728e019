"""Benchmark: the same pipeline in-process vs over RabbitMQ with 1 and 2 worker processes.

Corpus: the 1,000 real files of ``benchmarks/corpus.py``. Pipeline: classify (real Magika) then
package (voxel in PostgreSQL, payload in a local content-addressed folder) for every file
(``TL_ROUTES`` maps every default route key to ``["package"]``: spaCy and ONNX are measured by their own benchmarks). The
three modes share the same database server and store type, so what differs is the bus and the
process layout:

* ``inprocess`` (baseline): ``Runtime`` with the in-process bus, one process;
* ``rabbitmq_1``: the submitter (admission + store + publish) in this process, one
  ``thunderline worker --stages classify,package,collect``, outcomes read back from PostgreSQL;
* ``rabbitmq_2``: the same with two workers (the second without ``collect``).

Artifacts/s is measured from the first submission to the last recorded outcome. Broker cost per
message: our ``RabbitMQBus`` (publish with confirm, deliver, ack) against a bare aio-pika loop
doing the same on a quorum queue, same payload size. RSS: each worker's peak (VmHWM). CPU
seconds of the workers, the submitter and the local RabbitMQ node (``beam.smp``; in the
in-process mode its figure is what other users of the shared broker spent meanwhile).

Usage: .venv/bin/python benchmarks/scale.py [--files 1000] [--messages 2000] [--rounds 2]
The modes alternate over the rounds; the best round of each is reported (all are listed).
Needs RabbitMQ (TL_TEST_RABBITMQ_URL) and PostgreSQL (TL_TEST_DATABASE_URL), like the tests.
The last line printed is one JSON object (ARCHITECTURE §9).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
RABBIT = os.environ.get("TL_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
PG = os.environ.get("TL_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


MODES = ("inprocess", "rabbitmq_1", "rabbitmq_2")


def _default_routes() -> dict[str, list[str]]:
    from thunderline.config import DEFAULT_ROUTES as routes

    return routes


DEFAULT_ROUTES = _default_routes()


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


class Env:
    """A private vhost, PostgreSQL schema and object folder for one measurement."""

    def __init__(self, vhost: str) -> None:
        import psycopg

        self.tmp = Path(tempfile.mkdtemp(prefix="tl-bench-scale-"))
        self.schema = f"tl_bench_{uuid.uuid4().hex[:10]}"
        dsn = PG.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
        sep = "&" if "?" in PG else "?"
        parts = urlsplit(RABBIT)
        self.values: dict[str, str] = {
            "TL_DATABASE_URL": f"{PG}{sep}options={quote(f'-csearch_path={self.schema}')}",
            "TL_OBJECT_STORE_URL": (self.tmp / "objects").as_uri(),
            "TL_BUS_URL": urlunsplit((parts.scheme, parts.netloc, f"/{vhost}", "", "")),
            "TL_BUS_QUEUE_PREFIX": f"b{uuid.uuid4().hex[:8]}",
            # every route, not only "*": routes merge over the defaults, so {"*": [...]} alone
            # would still send text to extract/nlp, which these workers do not serve
            "TL_ROUTES": json.dumps({key: ["package"] for key in DEFAULT_ROUTES}),
            "TL_ONNX_ENABLED": "false",
        }

    def settings(self, **overrides: Any) -> Any:
        from thunderline.config import load_settings

        values: dict[str, Any] = {k.removeprefix("TL_").lower(): v for k, v in self.values.items()}
        values["routes"] = json.loads(values["routes"])
        values["home"] = self.tmp / "home"
        values.update(overrides)
        return load_settings(**values)

    def close(self) -> None:
        import psycopg

        dsn = PG.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{self.schema}" CASCADE')
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- artifacts/s ------------------------------------------------------------------------------
def run_inprocess(env: Env, paths: list[Path]) -> dict[str, Any]:
    from thunderline.classify.walk import Candidate
    from thunderline.runtime import Runtime

    settings = env.settings(bus_url="memory://")
    ends: list[Any] = []

    async def go() -> float:
        async with Runtime(settings, on_terminal=ends.append) as runtime:
            started = time.perf_counter()
            await runtime.submit_files(Candidate(p, p.parent) for p in paths)
            await runtime.wait_idle()
            return time.perf_counter() - started

    broker_before = _broker_cpu_s()
    cpu_before = _cpu_s(os.getpid())
    wall = asyncio.run(go())
    import resource

    process_cpu = _cpu_s(os.getpid()) - cpu_before
    return {
        "cpu_s": {
            "process": round(process_cpu, 1),
            "broker_unrelated": round(_broker_cpu_s() - broker_before, 1),
        },
        "cpu_ms_per_artifact": round(process_cpu / max(len(ends), 1) * 1000, 3),
        "artifacts": len(ends),
        "dlq": sum(1 for e in ends if e.is_dlq),
        "wall_s": round(wall, 2),
        "artifacts_per_s": round(len(ends) / wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _broker_cpu_s() -> float:
    """CPU seconds used so far by the local RabbitMQ node (beam.smp), 0 when not found."""
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] and proc.info["name"].startswith("beam"):
            times = proc.info["cpu_times"]
            total += times.user + times.system
    return total


def _cpu_s(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run_rabbitmq(env: Env, paths: list[Path], workers: int) -> dict[str, Any]:
    from thunderline.classify.walk import Candidate
    from thunderline.outcomes import OutcomeStore
    from thunderline.worker.submit import Submitter, wait_outcomes

    procs = []
    for n in range(workers):
        stages = "classify,package,collect" if n == 0 else "classify,package"
        log = open(env.tmp / f"worker{n}.log", "wb")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "thunderline.cli", "worker", "--stages", stages],
                env={**os.environ, **env.values, "TL_HOME": str(env.tmp / f"w{n}")},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    try:
        for n, proc in enumerate(procs):
            deadline = time.monotonic() + 120
            while "ready: stages" not in (env.tmp / f"worker{n}.log").read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((env.tmp / f"worker{n}.log").read_text()[-2000:])
                time.sleep(0.1)
        settings = env.settings()

        submitted: list[float] = []

        async def go() -> tuple[float, list[Any]]:
            started = time.perf_counter()
            async with Submitter(settings) as submitter:
                ids = await submitter.submit_all(Candidate(p, p.parent) for p in paths)
            submitted.append(time.perf_counter() - started)
            store = OutcomeStore(settings)
            try:
                outs = await wait_outcomes(store, ids, timeout_s=600)
            finally:
                store.close()
            return time.perf_counter() - started, outs

        broker_before = _broker_cpu_s()
        self_before = _cpu_s(os.getpid())
        workers_before = [_cpu_s(p.pid) for p in procs]
        wall, outs = asyncio.run(go())
        rss = [round(_peak_rss_mb(p.pid), 1) for p in procs]
        spent = {
            "workers": [_cpu_s(p.pid) - b for p, b in zip(procs, workers_before, strict=True)],
            "submitter": _cpu_s(os.getpid()) - self_before,
            "broker": _broker_cpu_s() - broker_before,
        }
        cpu = {
            "workers": [round(x, 2) for x in spent["workers"]],  # type: ignore[union-attr]
            "submitter": round(float(spent["submitter"]), 2),  # type: ignore[arg-type]
            "broker": round(float(spent["broker"]), 2),  # type: ignore[arg-type]
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    n = max(len(outs), 1)
    return {
        "artifacts": len(outs),
        "dlq": sum(1 for o in outs if o.kind == "dlq"),
        "wall_s": round(wall, 2),
        "artifacts_per_s": round(len(outs) / wall, 1),
        "submit_s": round(submitted[0], 2),
        "cpu_s": cpu,
        "cpu_ms_per_artifact": {
            "workers": round(sum(spent["workers"]) / n * 1000, 3),  # type: ignore[arg-type]
            "submitter": round(float(spent["submitter"]) / n * 1000, 3),  # type: ignore[arg-type]
            "broker": round(float(spent["broker"]) / n * 1000, 3),  # type: ignore[arg-type]
        },
        "submit_files_per_s": round(len(paths) / submitted[0], 1),
        "worker_peak_rss_mb": rss,
    }


# ---- broker cost per message ------------------------------------------------------------------
async def _bare_loop(url: str, n: int, body: bytes) -> float:
    import aio_pika

    connection = await aio_pika.connect_robust(url)
    try:
        pub = await connection.channel(publisher_confirms=True)
        sub = await connection.channel()
        await sub.set_qos(prefetch_count=256)
        name = f"bare-{uuid.uuid4().hex[:8]}"
        queue = await sub.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        started = time.perf_counter()
        for _ in range(n):
            await pub.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=name,
            )
        got = 0
        async with queue.iterator() as it:
            async for message in it:
                await message.ack()
                got += 1
                if got == n:
                    break
        elapsed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
        return elapsed
    finally:
        await connection.close()


async def _our_loop(url: str, n: int, body: bytes) -> float:
    from thunderline.bus.rabbitmq import RabbitMQBus

    bus = RabbitMQBus(url, prefix=f"c{uuid.uuid4().hex[:8]}", queue_max=n + 10)
    try:
        started = time.perf_counter()
        for _ in range(n):
            await bus.publish("classify", body)
        got = 0
        while got < n:
            for delivery in await bus.pull("classify", "bench", 256, 1.0):
                await bus.ack(delivery)
                got += 1
        return time.perf_counter() - started
    finally:
        await bus.close()


def broker_cost(url: str, n: int) -> dict[str, Any]:
    from thunderline.events import INGEST_RECEIVED, new_event

    body = new_event(
        INGEST_RECEIVED, {"artifact": {"name": "x" * 64, "source": "y" * 200}, "route": ["a"]}
    ).to_bytes()
    bare, ours = [], []
    for _ in range(2):  # alternate
        bare.append(asyncio.run(_bare_loop(url, n, body)))
        ours.append(asyncio.run(_our_loop(url, n, body)))
    return {
        "messages": n,
        "payload_bytes": len(body),
        "bare_us_per_message": round(min(bare) / n * 1e6, 1),
        "ours_us_per_message": round(min(ours) / n * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from corpus import build_corpus

    # the first --files of the 1,000-file corpus (a smaller n would rebuild the shared corpus)
    paths = build_corpus(HERE / ".corpus", n=max(args.files, 1000))[: args.files]
    vhost = f"tl-bench-{uuid.uuid4().hex[:8]}"
    _ctl("add_vhost", vhost)
    user = urlsplit(RABBIT).username or "guest"
    _ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    try:
        for _ in range(args.rounds):  # alternate the modes: the machine's load drifts
            for mode in MODES:
                env = Env(vhost)
                try:
                    if mode == "inprocess":
                        runs[mode].append(run_inprocess(env, paths))
                    else:
                        runs[mode].append(run_rabbitmq(env, paths, int(mode[-1])))
                finally:
                    env.close()
                print(f"{mode}: {runs[mode][-1]}", file=sys.stderr)
        results = {
            m: {
                **max(r, key=lambda x: x["artifacts_per_s"]),
                "all_artifacts_per_s": [x["artifacts_per_s"] for x in r],
            }
            for m, r in runs.items()
        }
        parts = urlsplit(RABBIT)
        cost = broker_cost(
            urlunsplit((parts.scheme, parts.netloc, f"/{vhost}", "", "")), args.messages
        )
        print(f"broker: {cost}", file=sys.stderr)
    finally:
        _ctl("delete_vhost", vhost)

    import aio_pika
    import magika

    base = results["inprocess"]["artifacts_per_s"]
    # the projection to 8 workers (docs/DEPLOY.md): each worker busy on its own core needs the
    # submitter and the broker to keep up with 8x one worker's rate, so each may spend at most
    # 1/8 of a worker's CPU per artifact (one core each)
    one = results["rabbitmq_1"]["cpu_ms_per_artifact"]
    per_worker_budget = one["workers"] / 8
    projection = {
        "workers": 8,
        "worker_cpu_ms_per_artifact": one["workers"],
        "budget_ms_per_artifact": round(per_worker_budget, 3),
        "submitter_cpu_ms_per_artifact": one["submitter"],
        "broker_cpu_ms_per_artifact": one["broker"],
        "submitter_met": one["submitter"] <= per_worker_budget,
        "broker_met": one["broker"] <= per_worker_budget,
        "projected_artifacts_per_s": round(8 * 1000 / one["workers"], 1)
        if one["workers"]
        else None,
        "inprocess_cpu_ms_per_artifact": results["inprocess"]["cpu_ms_per_artifact"],
    }
    print(
        json.dumps(
            {
                "name": "scale",
                "baseline": {"what": "in-process bus, one process", **results["inprocess"]},
                "ours": {
                    "what": "RabbitMQ + 1 worker process (submitter + collector over PostgreSQL)",
                    **results["rabbitmq_1"],
                    "two_workers": results["rabbitmq_2"],
                    "two_workers_vs_baseline": round(
                        results["rabbitmq_2"]["artifacts_per_s"] / base, 3
                    ),
                    "broker": cost,
                },
                "projection_8_workers": projection,
                "cpu_ratio": round(
                    results["inprocess"]["cpu_ms_per_artifact"]
                    / (one["workers"] + one["submitter"] + one["broker"]),
                    3,
                ),
                "ratio": round(results["rabbitmq_1"]["artifacts_per_s"] / base, 3),
                "goal": 0.8,
                "unit": "artifacts/s end to end, classify + package (ours/baseline)",
                "machine": {
                    "cores": os.cpu_count(),
                    "python": platform.python_version(),
                    "aio_pika": aio_pika.__version__,
                    "magika": magika.__version__,
                    "loaded": "shared with other sessions while measured",
                },
            }
        )
    )


if __name__ == "__main__":
    main()
