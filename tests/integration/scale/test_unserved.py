"""A route nobody serves never waits silently (issue 23), over the real broker.

``ingest`` with no worker for its first stage says what it waits for at once and gives up after
``TL_BUS_UNSERVED_TIMEOUT_S``; ``status`` names the unserved stage of an unfinished submission;
and with the workers of ``benchmarks/scale.py``'s mistake (everything but ``nlp``), the
extract worker warns when it publishes to the ``nlp`` queue, the waiting submitter reports
"waiting for stage nlp", and a real Prometheus fires ``ThunderlineStageUnserved`` from the
workers' queue gauges, then resolves it once an nlp worker starts.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from tests.integration.obs._pipeline import find_tool
from tests.integration.obs.test_live_alerting import free_port, get_json
from tests.integration.scale.conftest import Cluster
from tests.integration.scale.test_dlq_alert import start_prometheus, wait_for

from thunderline.bus.served import WATCHED_TOPICS, UnservedWatch
from thunderline.classify.walk import Candidate
from thunderline.config import load_settings
from thunderline.worker.doctor import doctor_report
from thunderline.worker.submit import Submitter, wait_outcomes


def _env(tmp_path: Path, rabbitmq_url: str, bus_prefix: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "TL_HOME": str(tmp_path / "home"),
        "TL_BUS_URL": rabbitmq_url,
        "TL_BUS_QUEUE_PREFIX": bus_prefix,
        "TL_ENABLE_ML_PIPELINE": "false",
        **extra,
    }


def _cli(
    env: dict[str, str], *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thunderline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def _flat(text: str) -> str:
    return " ".join(text.split())  # rich wraps long lines on a non-terminal


def test_ingest_says_at_once_what_it_waits_for_and_gives_up_after_the_timeout(
    tmp_path: Path, rabbitmq_url: str, bus_prefix: str
) -> None:
    doc = tmp_path / "doc.txt"
    doc.write_text("nobody will classify this\n")
    env = _env(tmp_path, rabbitmq_url, bus_prefix, TL_BUS_UNSERVED_TIMEOUT_S="4")
    started = time.monotonic()
    done = _cli(env, "ingest", str(doc))
    took = time.monotonic() - started
    err = _flat(done.stderr)
    assert done.returncode == 1, done.stdout + done.stderr
    queue = f"{bus_prefix}.classify"
    # the publish itself warns, naming the stage and the queue
    assert f"published to queue {queue}, which has no consumer: no worker serves stage" in err
    # the waiting submitter says what it waits for, then gives up with the typed error
    assert (
        f"waiting for stage classify: no worker serves it (1 message in queue {queue}; "
        "start `thunderline worker --stages classify`)" in err
    )
    assert "ingest failed: gave up after 4s (TL_BUS_UNSERVED_TIMEOUT_S)" in err
    assert "Nothing is lost" in err
    assert took < 60, took  # bounded: the timeout, a probe period, the CLI's start


async def test_status_names_the_unserved_stage_of_an_unfinished_submission(
    tmp_path: Path, rabbitmq_url: str, bus_prefix: str
) -> None:
    env = _env(tmp_path, rabbitmq_url, bus_prefix)
    settings = load_settings(
        home=tmp_path / "home",
        bus_url=rabbitmq_url,
        bus_queue_prefix=bus_prefix,
        enable_ml_pipeline=False,
    )
    doc = tmp_path / "doc.txt"
    doc.write_text("still waiting\n")
    async with Submitter(settings) as submitter:
        (cid,) = await submitter.submit_all([Candidate(doc, doc.parent)])
    done = await asyncio.to_thread(_cli, env, "status", cid)
    assert done.returncode == 3, done.stdout + done.stderr  # no outcome yet
    err = _flat(done.stderr)
    assert (
        f"waiting for stage classify: no worker serves it (1 message in queue {bus_prefix}" in err
    )
    assert f"no outcome recorded for {cid}" in err
    # doctor names it too (a warn row; the broker answers, so the bus row stays ok)
    rows = await asyncio.to_thread(doctor_report, settings)
    assert rows[0][:2] == ("bus", "ok")
    (warned,) = [row for row in rows if row[1] == "warn"]
    assert warned[0] == "bus classify"
    assert warned[2].startswith("waiting for stage classify: no worker serves it (1 message")


@pytest.mark.slow
async def test_a_stage_no_worker_serves_is_reported_and_alerts(cluster: Cluster) -> None:
    find_tool("prometheus")
    # every stage but nlp: text files go classify -> extract -> nlp -> package
    ml = {"TL_ENABLE_ML_PIPELINE": "true", "TL_ONNX_ENABLED": "false"}
    cluster.env.update(ml)
    port = free_port()
    workers = cluster.worker("classify,extract,package,collect", env={"TL_METRICS_PORT": str(port)})
    workers.wait_ready(120)
    work = cluster.tmp / "prometheus"
    work.mkdir()
    proc, prom = start_prometheus(work, [port])
    try:
        paths = cluster.make_files(3)
        settings = cluster.settings()
        async with Submitter(settings) as submitter:
            ids = await submitter.submit_all(Candidate(p, p.parent) for p in paths)
            watch = UnservedWatch(submitter.bus, WATCHED_TOPICS, timeout_s=0)
            waiting = asyncio.create_task(wait_outcomes(submitter.outcomes, ids, watch=watch))
            try:
                await wait_for("the submitter to report nlp", lambda: watch.lines, 120)
            finally:
                waiting.cancel()
        queue = f"{settings.bus.queue_prefix}.nlp"
        shown = re.compile(
            rf"waiting for stage nlp: no worker serves it \([123] messages? in queue {queue}; "
            r"start `thunderline worker --stages nlp`\)"
        )
        assert shown.fullmatch(watch.lines[0]), watch.lines
        # the extract worker's engine published there and said so in its log
        log = _flat(workers.text())
        assert f"published to queue {queue}, which has no consumer: no worker serves stage nlp" in (
            log
        )

        def firing() -> list[dict[str, Any]]:
            return [
                a
                for a in get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
                if a["labels"].get("alertname") == "ThunderlineStageUnserved"
                and a["state"] == "firing"
            ]

        (alert,) = await wait_for("ThunderlineStageUnserved to fire", firing, 90)
        assert alert["labels"]["stage"] == "nlp" and alert["labels"]["severity"] == "critical"
        assert 1 <= float(alert["value"]) <= 3  # the messages waiting in the nlp queue

        # an nlp worker starts: the messages are processed and the alert resolves
        cluster.worker("nlp").wait_ready(180)
        outcomes = await cluster.wait(ids, timeout_s=180)
        assert sorted(o.kind for o in outcomes) == ["voxel"] * 3
        await wait_for("the alert to resolve", lambda: not firing(), 90)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
