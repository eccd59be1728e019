"""Live proof for the Service dashboard: a real Prometheus scrapes a real ``thunderline serve``
while clients use it; every panel's query, with the ``job`` / ``instance`` variables filled in
as Grafana does, returns data, and the variables' own ``label_values`` queries list the server."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml
from tests.integration.api._server import EXAMPLES, api_settings, serve
from tests.integration.obs._pipeline import DEPLOY, find_tool
from tests.integration.obs.test_live_alerting import (
    finite,
    free_port,
    get_json,
    query_range,
    wait_for,
    wait_ready,
)

pytestmark = pytest.mark.slow
BOARD = DEPLOY / "grafana" / "service_dashboard.json"


def test_every_service_panel_has_data_from_a_real_server(tmp_path: Path) -> None:
    prometheus = find_tool("prometheus")
    board = json.loads(BOARD.read_text(encoding="utf-8"))
    with serve(api_settings(tmp_path / "home")) as served:
        work, port = tmp_path / "prom", free_port()
        work.mkdir()
        target = served.url.removeprefix("http://")
        config = {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "tl-serve", "static_configs": [{"targets": [target]}]}],
        }
        (work / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        log = work / "prometheus.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={work / 'prometheus.yml'}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--web.console.templates=/dev/null",
                    "--web.console.libraries=/dev/null",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            prom = f"http://127.0.0.1:{port}"
            wait_ready(f"{prom}/-/ready", proc, log)
            start = time.time()
            with served.client("read") as client:
                client.post(
                    "/v1/ingest",
                    files={"file": ("a.txt", (EXAMPLES / "python-history.txt").read_bytes())},
                )
                for _ in range(8):  # a few scrapes' worth of traffic
                    client.get("/v1/voxels", params={"limit": 5})
                    client.get("/healthz")
                    client.get("/v1/voxels/ffffffffffff")
                    time.sleep(0.5)
            time.sleep(3)
            end = time.time()

            def values(query: str) -> list[str]:
                params = urllib.parse.urlencode({"match[]": query.split("(", 1)[1].split(",")[0]})
                label = query.rsplit(",", 1)[1].strip(" )")
                answer = get_json(f"{prom}/api/v1/label/{label}/values?{params}")
                return [str(v) for v in answer["data"]]

            variables = {v["name"]: v for v in board["templating"]["list"]}
            jobs = wait_for(lambda: values(variables["job"]["query"]), 20, "the job variable")
            assert jobs == ["tl-serve"]
            instance_query = variables["instance"]["query"].replace("$job", "tl-serve")
            assert values(instance_query) == [target]

            empty = []
            for panel in board["panels"]:
                for t in panel.get("targets", []):
                    expr = (
                        t["expr"]
                        .replace("$__rate_interval", "10s")
                        .replace("$job", "tl-serve")
                        .replace("$instance", target.replace(".", "\\\\."))
                    )
                    if not finite(query_range(prom, expr, start - 5, end)):
                        empty.append(f"{panel['title']}: {expr}")
            assert empty == [], "panels without data:\n" + "\n".join(empty)
        finally:
            proc.terminate()
            proc.wait(10)
