"""Live proof that ``ThunderlineDLQRateHigh`` fires in scale-out mode.

Two ``thunderline worker`` processes over RabbitMQ, PostgreSQL and S3 (the ``cluster``): one
classifies, the other packages and collects; each serves ``/metrics``. A real Prometheus on
loopback scrapes both and evaluates (a short-window copy of) the committed alert rules. About
one artifact in six names a local path, which a worker refuses (``path_escape``): the DLQ
count comes from the classify worker, the denominator (``thunderline_ingest_completed_total``)
from the collector of the other. Before issue 21 the workers' collector never counted that
denominator, so this alert could not fire in the deployment it exists for.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.obs._pipeline import DEPLOY, find_tool
from tests.integration.obs.test_live_alerting import free_port, get_json, short_rules, wait_ready
from tests.integration.scale.conftest import Cluster

from thunderline.bus.factory import open_bus
from thunderline.classify.walk import Candidate
from thunderline.runtime import ingest_event

pytestmark = pytest.mark.slow

MAX_WAVES = 30
GOOD_PER_WAVE = 10
BAD_PER_WAVE = 2


def start_prometheus(work: Path, targets: list[int]) -> tuple[subprocess.Popen[bytes], str]:
    """Prometheus on a free loopback port, scraping ``targets`` every second with the
    committed rules in test-sized windows (checked by promtool first)."""
    rules = work / "rules.yml"
    rules.write_text(
        short_rules((DEPLOY / "prometheus" / "alerts.yml").read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    check = subprocess.run(
        [find_tool("promtool"), "check", "rules", str(rules)], capture_output=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": "thunderline-workers",
                "static_configs": [{"targets": [f"127.0.0.1:{port}" for port in targets]}],
            }
        ],
    }
    (work / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    log = work / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                find_tool("prometheus"),
                f"--config.file={work / 'prometheus.yml'}",
                f"--storage.tsdb.path={work / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.console.templates=/dev/null",
                "--web.console.libraries=/dev/null",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/-/ready", proc, log)
    return proc, url


async def wait_for(what: str, check: Callable[[], Any], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(check)
        if found:
            return found
        await asyncio.sleep(0.5)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    answer = get_json(f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def test_dlq_rate_alert_fires_over_the_workers_metrics(cluster: Cluster) -> None:
    find_tool("prometheus")
    classify_port, collect_port = free_port(), free_port()
    classifier = cluster.worker("classify", env={"TL_METRICS_PORT": str(classify_port)})
    collector = cluster.worker("package,collect", env={"TL_METRICS_PORT": str(collect_port)})
    classifier.wait_ready()
    collector.wait_ready()
    work = cluster.tmp / "prometheus"
    work.mkdir()
    proc, prom = start_prometheus(work, [classify_port, collect_port])
    try:
        await wait_for(
            "both workers scraped",
            lambda: (
                sum(
                    t["health"] == "up"
                    for t in get_json(f"{prom}/api/v1/targets")["data"]["activeTargets"]
                )
                == 2
            ),
            30,
        )

        def firing() -> list[dict[str, Any]]:
            return [
                a
                for a in get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
                if a["labels"].get("alertname") == "ThunderlineDLQRateHigh"
                and a["state"] == "firing"
            ]

        # traffic in waves until the alert fires (its windows are seconds long: it must fire
        # while artifacts still finish)
        bus = open_bus(cluster.settings())
        ids: list[str] = []
        alerts: list[dict[str, Any]] = []
        try:
            for wave in range(MAX_WAVES):
                paths = cluster.make_files(GOOD_PER_WAVE, prefix=f"w{wave}-")
                ids += await cluster.submit(paths)
                for path in cluster.make_files(BAD_PER_WAVE, prefix=f"bad{wave}-"):
                    event = ingest_event(Candidate(path, path.parent))  # a path, no payload
                    await bus.publish("classify", event.to_bytes())
                    ids.append(event.correlationid)
                await asyncio.sleep(1.0)
                alerts = await asyncio.to_thread(firing)
                if alerts:
                    break
        finally:
            await bus.close()
        assert alerts, f"ThunderlineDLQRateHigh did not fire in {MAX_WAVES} waves"
        (alert,) = alerts
        assert alert["labels"]["stage"] == "classify"
        assert alert["labels"]["severity"] == "warning"
        assert float(alert["value"]) > 0.02

        # the denominator comes from the collector's process, the DLQ count from classify's
        completed = query(prom, "sum by (instance) (thunderline_ingest_completed_total)")
        assert {r["metric"]["instance"] for r in completed} == {f"127.0.0.1:{collect_port}"}
        # (every process exposes the classify stage's DLQ series, at 0 until one is counted)
        dead_counted = query(prom, "sum by (instance) (thunderline_dlq_total) > 0")
        assert {r["metric"]["instance"] for r in dead_counted} == {f"127.0.0.1:{classify_port}"}

        outcomes = await cluster.wait(ids, timeout_s=120)
        dead = [o for o in outcomes if o.kind == "dlq"]
        assert len(dead) == len(ids) // (GOOD_PER_WAVE + BAD_PER_WAVE) * BAD_PER_WAVE
        assert {o.event.data["reason"] for o in dead} == {"path_escape"}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
